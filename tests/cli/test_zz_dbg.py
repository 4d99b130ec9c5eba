def test_x(write, run):
    from cli_models import ALIASING
    write("models/alias.py", ALIASING)
    r = run("models", "--format", "json")
    print(repr(r))
    assert 0

"""Dynamic core: model + transform -> CheckResult. Imports neither pytest nor rich."""

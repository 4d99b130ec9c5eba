"""Renderers: findings and check results to text, JSON, SARIF, GitHub annotations, HTML."""

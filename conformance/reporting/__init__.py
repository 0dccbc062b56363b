"""Reporting: the report (tables, JSON, JUnit), the model card, the catalogue.

Reads results and the registry; writes files. Nothing below it imports it.
"""

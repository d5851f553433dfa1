"""Who may see what: authentication (API keys, JWTs), roles, the field policy, the `@pii`
field extension that enforces it, masking and hashing, PII categories and the audit of clear
reads. May import the domain and `graph_api.settings`/`errors`; never the schema or `tracking`.
"""

"""The domain: identifiers, profiles, the resolution rules and the merge decisions.

Lives here: the model, normalisation, rules, the resolver, survivorship, the use cases
(`service`) and the ports (`store`: the identity store; `records`: API keys and the audit
log). May import only the standard library, its own modules and pure libraries (networkx,
phonenumbers, msgpack, orjson); never `graph_api`, Strawberry, Starlette or an adapter.
"""

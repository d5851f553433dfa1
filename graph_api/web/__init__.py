"""The browser pages: c360's own GraphiQL on `GET /graphql` and the explorer on `/explore`,
their HTML, their plain-JS scripts and the vendored bundles they run on (`static/vendor/`,
pinned, with their licences), all served by c360 itself with long cache headers and a
Content-Security-Policy that allows no other origin. The pages talk to the public GraphQL API
with the caller's own key. May import `graph_api.settings`; never the schema or the domain.
"""

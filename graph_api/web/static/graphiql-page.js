// c360's GraphiQL: everything it loads comes from c360 itself.
(function () {
  "use strict";

  var QUERY = [
    "# Welcome to c360's GraphiQL.",
    "#",
    "# Every request needs an API key: in the Headers tab",
    "# below, put yours in place of <your API key>.",
    "# (`c360 serve --demo` printed an admin key;",
    "# `c360 keys create --role support` makes others.)",
    "#",
    "# Then re-fetch the schema (Shift-Ctrl-R, or the",
    "# circling arrows on the left) for completion and",
    "# docs, and run the query: Ctrl-Enter or the ▶ button.",
    "#",
    "# What you see of personal fields depends on your",
    "# key's role: clear, masked, hashed or denied.",
    "# /explore draws a customer's identity graph with",
    "# the same key.",
    "",
    "query FirstCustomers {",
    "  customers(first: 5) {",
    "    totalCount",
    "    edges {",
    "      node {",
    "        id",
    "        traits { name email phone address { city country } }",
    "        identifiers { kind value lastSeen }",
    "        consents { purpose status }",
    "      }",
    "    }",
    "  }",
    "}",
    "",
  ].join("\n");

  var HEADERS = '{\n  "Authorization": "Bearer <your API key>"\n}';

  var e = React.createElement;
  var HINT =
    "Put your API key in the Headers tab below (in place of <your API key>), then re-fetch" +
    " the schema (Shift-Ctrl-R) and run the query.";
  var send = GraphiQL.createFetcher({ url: new URL("/graphql", location.href).href });

  // Until a key is in the headers, say so instead of sending a request c360 must refuse.
  function fetcher(params, options) {
    var headers = (options && options.headers) || {};
    var auth = String(headers.Authorization || headers.authorization || "");
    if (!auth || auth.indexOf("<your API key>") >= 0) {
      return Promise.resolve({ errors: [{ message: HINT }] });
    }
    return send(params, options);
  }

  var logo = e(
    GraphiQL.Logo,
    null,
    e("span", { className: "c360-logo" }, "c360 ", e("small", null, e("a", { href: "/explore" }, "explorer")))
  );

  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    e(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: QUERY,
      defaultHeaders: HEADERS,
      defaultEditorToolsVisibility: "headers",
      shouldPersistHeaders: false,
    }, logo)
  );
})();

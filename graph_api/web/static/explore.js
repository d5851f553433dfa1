// The c360 explorer: a customer's profile and identity graph, read through the public GraphQL
// API with the key the user pastes (kept in this tab's sessionStorage only), so the key's
// role decides what is drawn. Plain JS, no build step; cytoscape draws the graph. The edges
// are the customer's links (Customer.links, a page at a time); explainLink only highlights
// the path between two identifiers the user picks.
(function () {
  "use strict";

  var KEY_ITEM = "c360.explore.key";
  var LINKS_PAGE = 100; // links per request: the server's maximum page size by default
  var KIND_COLOURS = {
    user_id: "#1c7ed6",
    email: "#2b8a3e",
    phone: "#0c8599",
    anonymous_id: "#868e96",
    device_id: "#7048e8",
  };
  var OTHER_COLOUR = "#e8590c";
  var KIND_ORDER = ["user_id", "email", "phone", "device_id", "anonymous_id"];
  var BIG = 150; // identifiers beyond which the graph is drawn in rings, labels shown on zoom

  var LINK = "fragment link on Link { from { kind value } to { kind value } source messageId observedAt rule }";
  var PROFILE = [
    "query Profile($id: ID, $identifier: IdentifierInput) {",
    "  customer(id: $id, identifier: $identifier) {",
    "    id createdAt",
    "    identifiers { kind value firstSeen lastSeen sources }",
    "    traits { name firstName lastName email phone company title birthday",
    "      address { street city state postalCode country } custom }",
    "    consents { purpose status at source }",
    "    events(first: 20) { totalCount edges { node { id type name category timestamp source properties } } }",
    "    mergeHistory(first: 50) { id at kind survivorId absorbedId actor messageId undoes undoneBy",
    "      links(first: 20) { ...link } identifiers(first: 20) { kind value } }",
    "    conflicts(first: 20) { id at messageId reason dropped(first: 20) { kind value } }",
    "  }",
    "}",
    LINK,
  ].join("\n");
  var CUSTOMERS =
    "query Customers($after: String) { customers(first: 15, after: $after) { totalCount" +
    " edges { node { id traits { name } identifiers { kind } } } pageInfo { hasNextPage endCursor } } }";
  // Customer.audiences may not exist in this c360 yet: asked apart, so the profile never fails
  var AUDIENCES = "query Audiences($id: ID) { customer(id: $id) { audiences { since audience { name purpose } } } }";
  var ADMIN_PROBE = "query Role { apiKeys(first: 1) { totalCount } }";
  var UNDO = "mutation Undo($id: ID!) { undoMerge(mergeId: $id) { id kind survivorId absorbedId } }";
  var SPLIT =
    "mutation Split($customer: ID!, $identifiers: [IdentifierInput!]!) {" +
    " unmerge(customerId: $customer, identifiers: $identifiers) { id kind survivorId absorbedId } }";
  var LINKS =
    "query Links($id: ID, $first: Int!, $after: String) { customer(id: $id) {" +
    " links(first: $first, after: $after) { ...link } } }\n" + LINK;
  var EXPLAIN =
    "query Explain($a: IdentifierInput!, $b: IdentifierInput!) { explainLink(a: $a, b: $b) { linked path { ...link } } }\n" +
    LINK;

  var state = {
    key: sessionStorage.getItem(KEY_ITEM) || "",
    admin: false,
    customer: null,
    errors: [],
    nodes: [], // one per identifier: {id, kind, value, clear, denied, twins, identifier}
    shownAs: {}, // kind and value as shown to the role -> the nodes shown so
    picked: [],
    cy: null,
    after: null,
  };
  window.c360Explorer = state; // for the browser tests and the curious

  function $(id) {
    return document.getElementById(id);
  }

  // Build DOM from untrusted data: text only, never HTML.
  function h(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === undefined || value === null || value === false) return;
      if (name === "text") node.textContent = value;
      else if (name.slice(0, 2) === "on") node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    });
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) child.forEach(function (c) { if (c) node.appendChild(c); });
      else node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function say(message, isError) {
    var status = $("status");
    status.textContent = message || "";
    status.className = isError ? "error" : "";
  }

  function ApiError(errors, status) {
    var first = (errors && errors[0]) || {};
    this.code = (first.extensions && first.extensions.code) || "HTTP_" + status;
    this.message = (first.message || "request failed") + " (" + this.code + ")";
  }

  // One GraphQL request with the pasted key; resolves to {data, errors}.
  function gql(query, variables) {
    return fetch("/graphql", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: "Bearer " + state.key },
      body: JSON.stringify({ query: query, variables: variables || {} }),
    }).then(function (response) {
      return response.json().then(
        function (body) {
          if (!body.data) throw new ApiError(body.errors, response.status);
          return { data: body.data, errors: body.errors || [] };
        },
        function () {
          throw new ApiError([], response.status);
        }
      );
    });
  }

  function isClear(value) {
    return typeof value === "string" && value.indexOf("*") < 0 && !/^[0-9a-f]{64}$/.test(value);
  }

  function short(value) {
    if (value === null || value === undefined) return "denied";
    return value.length > 28 ? value.slice(0, 12) + "…" + value.slice(-8) : value;
  }

  function when(iso) {
    return iso ? iso.replace("T", " ").replace(/(\.\d+)?(\+00:00|Z)$/, "") : "";
  }

  // Fields the role may not read come back null with a FORBIDDEN_FIELD error at their path.
  function deniedAt(path) {
    var where = path.join(".");
    var keys = [];
    var whole = false;
    state.errors.forEach(function (error) {
      if (!error.path || (error.extensions || {}).code !== "FORBIDDEN_FIELD") return;
      if (error.path.join(".") !== where) return;
      if (error.extensions.key) keys.push(error.extensions.key);
      else whole = true;
    });
    return { whole: whole, keys: keys };
  }

  function deniedBadge() {
    return h("span", { class: "badge denied", text: "denied" });
  }

  function shown(value, path) {
    if (value !== null && value !== undefined) {
      return typeof value === "object" ? JSON.stringify(value) : String(value);
    }
    return deniedAt(path).whole ? deniedBadge() : h("span", { class: "muted", text: "—" });
  }

  // --- key ---------------------------------------------------------------------------

  function useKey(key) {
    state.key = key;
    if (key) sessionStorage.setItem(KEY_ITEM, key);
    else sessionStorage.removeItem(KEY_ITEM);
    $("key").value = key;
    state.admin = false;
    $("whoami").textContent = "";
    if (!key) return Promise.resolve();
    return gql(ADMIN_PROBE)
      .then(function (result) {
        state.admin = !result.errors.length;
      })
      .catch(function (error) {
        if (error.code === "INVALID_TOKEN" || error.code === "UNAUTHENTICATED") {
          state.key = "";
          sessionStorage.removeItem(KEY_ITEM);
          throw error;
        }
      })
      .then(function () {
        $("whoami").textContent = state.admin
          ? "admin key: undo and split enabled"
          : "undo and split need an admin key";
        state.after = null;
        $("customer-list").replaceChildren();
        return loadCustomers();
      });
  }

  function loadCustomers() {
    return gql(CUSTOMERS, { after: state.after }).then(function (result) {
      var page = result.data.customers;
      page.edges.forEach(function (edge) {
        var node = edge.node;
        $("customer-list").appendChild(
          h("li", { "data-id": node.id, onclick: function () { find("id", node.id); } },
            h("span", { text: node.traits.name || "(no name)" }),
            h("span", { class: "id", text: node.id.slice(0, 10) + "… · " + node.identifiers.length + " ids" }))
        );
      });
      state.after = page.pageInfo.endCursor;
      $("more").hidden = !page.pageInfo.hasNextPage;
      $("customers").querySelector("p").textContent = page.totalCount + " customers. Pick one, or find one above.";
    });
  }

  // --- search and profile ----------------------------------------------------------

  function lookup(kind, text) {
    var value = text.trim();
    if (kind === "auto") {
      var named = /^([a-z_][a-z0-9_]*):(.+)$/i.exec(value);
      if (/^[0-9a-f]{32}$/i.test(value)) kind = "id";
      else if (named && named[1] !== "http" && named[1] !== "https") {
        kind = named[1].toLowerCase();
        value = named[2].trim();
      } else if (value.indexOf("@") > 0) kind = "email";
      else if (/^\+?[\d ().-]{7,}$/.test(value)) kind = "phone";
      else kind = "id";
    }
    return kind === "id" ? { id: value } : { identifier: { kind: kind, value: value } };
  }

  function find(kind, text) {
    if (!state.key) return say("Paste an API key first.", true);
    if (!text.trim()) return say("Type what to look for.", true);
    say("Looking…");
    return load(lookup(kind, text));
  }

  function load(variables) {
    return gql(PROFILE, variables)
      .then(function (result) {
        if (!result.data.customer) {
          var failed = result.errors.filter(function (e) { return e.path && e.path.length === 1; });
          say(failed.length ? failed[0].message : "No customer found.", true);
          return;
        }
        state.customer = result.data.customer;
        state.errors = result.errors;
        showProfile();
        showAudiences(state.customer.id);
        return draw().then(function () {
          var c = state.customer;
          say("Customer " + c.id + ": " + c.identifiers.length + " identifiers.");
        });
      })
      .catch(function (error) {
        say(error.message, true);
      });
  }

  function showProfile() {
    var c = state.customer;
    var t = c.traits || {};
    var traitRows = [];
    ["name", "email", "phone", "company", "title", "birthday"].forEach(function (name) {
      traitRows.push(h("dt", { text: name }), h("dd", null, shown(t[name], ["customer", "traits", name])));
    });
    var address = t.address || {};
    var place = ["street", "city", "state", "postalCode", "country"]
      .map(function (part) { return address[part]; })
      .filter(function (part) { return part; })
      .join(", ");
    var addressDenied = ["street", "city", "state", "postalCode", "country"].some(function (part) {
      return deniedAt(["customer", "traits", "address", part]).whole;
    });
    traitRows.push(h("dt", { text: "address" }), h("dd", null, addressDenied ? deniedBadge() : place || "—"));
    var custom = t.custom || {};
    var customDenied = deniedAt(["customer", "traits", "custom"]);
    Object.keys(custom).forEach(function (key) {
      var value = custom[key];
      var denied = value === null && customDenied.keys.indexOf(key) >= 0;
      traitRows.push(h("dt", { text: key }), h("dd", null, denied ? deniedBadge() : shown(value, [])));
    });

    var consents = c.consents.length
      ? h("dl", { class: "kv" }, c.consents.map(function (consent) {
          return [
            h("dt", { text: consent.purpose }),
            h("dd", null, h("span", { class: "badge " + consent.status, text: consent.status }),
              h("span", { class: "muted", text: " " + when(consent.at) + " · " + consent.source })),
          ];
        }).flat())
      : h("p", { class: "muted", text: "No consent recorded." });

    var events = h("ol", { class: "timeline" }, c.events.edges.map(function (edge, i) {
      var e = edge.node;
      var denied = deniedAt(["customer", "events", "edges", i, "node", "properties"]);
      var props = Object.keys(e.properties || {})
        .filter(function (k) { return e.properties[k] !== null; })
        .slice(0, 4)
        .map(function (k) {
          var v = e.properties[k];
          var text = typeof v === "object" ? JSON.stringify(v) : String(v);
          return k + ": " + (text.length > 60 ? text.slice(0, 57) + "…" : text);
        })
        .join(" · ");
      return h("li", { class: e.type },
        h("div", null, h("strong", { text: e.name || e.type.toLowerCase() }),
          h("span", { class: "when", text: "  " + when(e.timestamp) })),
        props ? h("div", { class: "props mono", text: props }) : null,
        denied.keys.length || denied.whole
          ? h("div", null, deniedBadge(), h("span", { class: "muted", text: " " + denied.keys.join(", ") }))
          : null);
    }));

    var merges = c.mergeHistory.length
      ? h("ul", { class: "records" }, c.mergeHistory.map(mergeRow))
      : h("p", { class: "muted", text: "No merges." });
    var conflicts = c.conflicts.length
      ? h("ul", { class: "records" }, c.conflicts.map(function (conflict) {
          return h("li", null, h("span", { class: "badge denied", text: "CONFLICT" }),
            h("span", { text: conflict.reason }),
            h("span", { class: "muted", text: when(conflict.at) + " · dropped " + conflict.dropped.map(function (d) {
              return d.kind + " " + short(d.value);
            }).join(", ") }));
        }))
      : h("p", { class: "muted", text: "No merge conflicts." });

    var panel = $("profile");
    panel.hidden = false;
    panel.replaceChildren(
      h("h2", { text: t.name || "Customer" }),
      h("div", { class: "mono muted", text: c.id }),
      h("div", { class: "muted", text: c.identifiers.length + " identifiers · " + c.events.totalCount +
        " events · since " + when(c.createdAt) }),
      h("h3", { text: "Traits" }), h("dl", { class: "kv" }, traitRows),
      h("h3", { text: "Consent" }), consents,
      h("h3", { text: "Audiences" }), h("div", { id: "audiences", class: "muted", text: "…" }),
      h("h3", { text: "Latest events" }), events,
      h("h3", { text: "Merges" }), merges,
      h("h3", { text: "Merge conflicts" }), conflicts
    );
  }

  function showAudiences(id) {
    return gql(AUDIENCES, { id: id })
      .then(function (result) {
        var memberships = (result.data.customer || {}).audiences || [];
        var place = $("audiences");
        if (!place || state.customer.id !== id) return;
        place.replaceChildren(memberships.length
          ? h("ul", { class: "records" }, memberships.map(function (m) {
              return h("li", null, h("strong", { text: m.audience.name }),
                h("span", { class: "muted", text: (m.audience.purpose ? m.audience.purpose + " · " : "") + "since " + when(m.since) }));
            }))
          : h("span", { text: "In no audience." }));
      })
      .catch(function (error) {
        var place = $("audiences");
        if (!place) return;
        place.textContent = /Cannot query field/.test(error.message)
          ? "This c360 has no audiences yet."
          : error.message;
      });
  }

  function mergeRow(record) {
    var undoable = record.kind === "MERGE" && !record.undoneBy && state.admin;
    return h("li", { "data-merge": record.id },
      h("span", { class: "badge " + (record.undoneBy ? "undone" : record.kind), text: record.undoneBy ? "UNDONE" : record.kind }),
      h("span", { text: when(record.at) }),
      h("span", { class: "muted mono", text: (record.kind === "UNMERGE" ? "new " : "absorbed ") + record.absorbedId.slice(0, 10) + "…" }),
      record.links.length ? h("span", { class: "muted", text: record.links.length + " link(s)" }) : null,
      undoable ? h("button", { type: "button", class: "danger undo", onclick: function () { undo(record); }, text: "Undo" }) : null);
  }

  // --- the graph -------------------------------------------------------------------

  function colour(kind) {
    return KIND_COLOURS[kind] || OTHER_COLOUR;
  }

  function evidence(link) {
    return [
      link.from.kind + " " + short(link.from.value) + " — " + link.to.kind + " " + short(link.to.value),
      "source: " + link.source,
      "message: " + link.messageId,
      "seen: " + when(link.observedAt),
      "rule: " + link.rule,
    ].join("\n");
  }

  // Nodes are keyed by kind and value as the role sees them: clear, hashed (one hash per
  // value), masked (j***@e***.com: several values can look alike) or denied (null). A link's
  // ends come back shown the same way, so an end names a node when exactly one node is shown
  // so; when several are, which one it is cannot be told, and the link is not drawn.
  function shownKey(kind, value) {
    return kind + "\u0000" + (value === null || value === undefined ? "\u0000denied" : value);
  }

  function nodesShownAs(ref) {
    return state.shownAs[shownKey(ref.kind, ref.value)] || [];
  }

  function nodeOf(ref) {
    var matches = nodesShownAs(ref);
    return matches.length === 1 ? matches[0] : null;
  }

  function edgeKey(a, b) {
    return a < b ? a + "|" + b : b + "|" + a;
  }

  // All the customer's links, LINKS_PAGE a request: `after` is how many were read before.
  // A server with a smaller maximum page size says so (BAD_INPUT), and is asked for that.
  function allLinks(id, isCurrent) {
    var links = [];
    var size = LINKS_PAGE;
    function page() {
      var variables = { id: id, first: size, after: links.length ? String(links.length) : null };
      return gql(LINKS, variables)
        .then(function (result) {
          var customer = result.data.customer;
          if (!customer || !customer.links) throw new ApiError(result.errors, 200);
          return customer.links;
        })
        .catch(function (error) {
          var most = /at most (\d+)/.exec(error.message);
          var smaller = most ? Number(most[1]) : 0;
          if (error.code !== "BAD_INPUT" || !(smaller > 0 && smaller < size)) throw error;
          size = smaller;
          return page();
        });
    }
    function next() {
      return page().then(function (got) {
        links = links.concat(got);
        if (got.length < size || !isCurrent()) return links;
        if (links.length > size) say("Reading links: " + links.length + "…");
        return next();
      });
    }
    return next();
  }

  function draw() {
    var c = state.customer;
    state.picked = [];
    state.shownAs = {};
    state.nodes = c.identifiers.map(function (identifier, i) {
      var node = {
        id: "n" + i,
        kind: identifier.kind,
        value: identifier.value,
        clear: isClear(identifier.value),
        denied: identifier.value === null,
        twins: 0,
        identifier: identifier,
      };
      var key = shownKey(node.kind, node.value);
      (state.shownAs[key] = state.shownAs[key] || []).push(node);
      return node;
    });
    Object.keys(state.shownAs).forEach(function (key) {
      var alike = state.shownAs[key];
      if (alike.length > 1) alike.forEach(function (n) { n.twins = alike.length - 1; });
    });
    var anchors = state.nodes.filter(function (n) { return !n.denied; }).sort(function (a, b) {
      return (b.clear - a.clear) || (a.twins > 0) - (b.twins > 0) || rank(a.kind) - rank(b.kind);
    });
    var isCurrent = function () { return state.customer === c; };
    return allLinks(c.id, isCurrent)
      .then(
        function (links) { return { links: links, failed: null }; },
        function (error) { return { links: [], failed: error.message }; }
      )
      .then(function (read) {
        if (isCurrent()) render(anchors[0], read);
      });
  }

  function rank(kind) {
    var at = KIND_ORDER.indexOf(kind);
    return at < 0 ? KIND_ORDER.length : at;
  }

  function render(anchor, read) {
    var c = state.customer;
    var elements = [];
    var edges = {};
    var unmatched = { alike: 0, absent: 0 };
    state.nodes.forEach(function (n) {
      elements.push({
        group: "nodes",
        data: { id: n.id, label: n.kind + "\n" + short(n.value), colour: colour(n.kind), node: n },
        classes: "identifier" + (n.denied ? " denied" : "") + (n.clear ? "" : " hidden-value"),
      });
    });
    function addEdge(link) {
      var from = nodesShownAs(link.from);
      var to = nodesShownAs(link.to);
      if (from.length > 1 || to.length > 1) {
        unmatched.alike += 1; // an end shown like another identifier: which one is unknown
        return;
      }
      if (!from.length || !to.length) {
        unmatched.absent += 1; // the profile changed between the two reads
        return;
      }
      var key = edgeKey(from[0].id, to[0].id);
      if (edges[key] || from[0] === to[0]) return;
      edges[key] = {
        group: "edges",
        data: { id: "e" + Object.keys(edges).length, source: from[0].id, target: to[0].id, tip: evidence(link), link: link },
        classes: "link",
      };
      elements.push(edges[key]);
    }
    read.links.forEach(addEdge);
    // a live merge's links are among the customer's links: drawn as its boundary
    c.mergeHistory.forEach(function (record) {
      if (record.kind !== "MERGE" || record.undoneBy) return;
      record.links.forEach(function (link) {
        var from = nodeOf(link.from);
        var to = nodeOf(link.to);
        var edge = from && to && edges[edgeKey(from.id, to.id)];
        if (!edge) return;
        if (edge.classes.indexOf("merge") < 0) edge.classes += " merge";
        edge.data.tip += "\nmerge boundary: " + record.id + " at " + when(record.at);
      });
    });
    c.conflicts.forEach(function (conflict) {
      var group = "c" + conflict.id;
      elements.push({
        group: "nodes",
        data: { id: group, label: "conflict · " + when(conflict.at).slice(0, 10), tip: conflict.reason + "\nmessage: " + conflict.messageId },
        classes: "conflict",
      });
      conflict.dropped.forEach(function (ref, j) {
        elements.push({
          group: "nodes",
          data: {
            id: group + "-" + j, parent: group, label: ref.kind + "\n" + short(ref.value), colour: colour(ref.kind),
            tip: "dropped by a merge conflict: " + conflict.reason + "\nmessage: " + conflict.messageId,
          },
          classes: "dropped",
        });
      });
    });

    if (state.cy) state.cy.destroy();
    var count = state.nodes.length;
    var linkCount = Object.keys(edges).length;
    var big = count > BIG;
    var layout = !big && linkCount
      ? {
          name: "cose", animate: false, randomize: true, padding: 30, nodeOverlap: 40, componentSpacing: 120,
          nodeRepulsion: function () { return 16000; }, idealEdgeLength: function () { return 90; },
        }
      : big
        ? "rings"
        : { name: "grid", padding: 30, avoidOverlap: true };
    state.cy = cytoscape({
      container: $("graph"),
      elements: elements,
      layout: { name: "preset" },
      minZoom: 0.05,
      maxZoom: 1.4,
      style: [
        { selector: "node.identifier", style: {
          "background-color": "data(colour)", label: "data(label)", "text-wrap": "wrap", "font-size": 9,
          "text-valign": "bottom", "text-margin-y": 3, color: "#1d2433", width: 22, height: 22,
          "text-background-color": "#ffffff", "text-background-opacity": 0.75, "text-background-padding": 1,
          "min-zoomed-font-size": 7 } },
        { selector: "node.hidden-value", style: { "border-width": 2, "border-style": "dashed", "border-color": "#495057" } },
        { selector: "node.denied", style: { "background-color": "#ffffff", "border-color": "#c92a2a", "border-width": 2 } },
        { selector: "node.conflict", style: {
          label: "data(label)", "font-size": 9, "text-valign": "top", "background-color": "#fff5f5",
          "border-color": "#c92a2a", "border-style": "dashed", "border-width": 1, color: "#c92a2a" } },
        { selector: "node.dropped", style: {
          "background-color": "data(colour)", "background-opacity": 0.35, label: "data(label)", "text-wrap": "wrap",
          "font-size": 8, "text-valign": "bottom", width: 16, height: 16, "border-width": 2, "border-color": "#c92a2a" } },
        { selector: "edge", style: { width: 2, "line-color": "#adb5bd", "curve-style": "bezier" } },
        { selector: "edge.merge", style: { width: 4, "line-color": "#f59f00", "line-style": "dashed" } },
        { selector: "edge.explained", style: { "line-style": "dotted" } },
        { selector: ".faded", style: { opacity: 0.2 } },
        { selector: "edge.path", style: { width: 5, "line-color": "#d6336c", opacity: 1 } },
        { selector: "node.path", style: { "border-width": 4, "border-color": "#d6336c", opacity: 1 } },
        { selector: "node.picked", style: { "border-width": 4, "border-color": "#1d2433", "border-style": "solid" } },
      ],
    });
    if (big) {
      state.cy.style().selector("node.identifier").style({ width: 10, height: 10, "font-size": 6 })
        .selector("edge").style({ width: 0.7, opacity: 0.6 }).update();
    }
    placeAll(layout === "rings" ? rings(anchor) : layout);
    $("graph").setAttribute("data-identifiers", String(count));
    $("graph").setAttribute("data-links", String(linkCount));
    $("graph").setAttribute("data-api-links", String(read.links.length));
    $("graph").setAttribute("data-unmatched", String(unmatched.alike + unmatched.absent));
    bindGraph();
    legend();
    notes(read, unmatched);
    $("details").replaceChildren();
    updateActions();
  }

  // Many identifiers: rings around the anchor, nearer rings for fewer links away, each ring
  // holding as many as its length allows; labels appear when zoomed in enough to read them.
  function rings(anchor) {
    var cy = state.cy;
    var main = cy.elements().not(".conflict, .dropped");
    var depth = {};
    if (anchor) {
      main.bfs({ roots: "#" + anchor.id, visit: function (v, e, u, i, d) { depth[v.id()] = d; } });
    }
    function far(node) {
      return node.id() in depth ? depth[node.id()] : Infinity;
    }
    var nodes = main.nodes().toArray().sort(function (a, b) {
      return far(a) - far(b) || rank(a.data("node").kind) - rank(b.data("node").kind);
    });
    var ring = {};
    var current = 0;
    var used = 0;
    var level = nodes.length ? far(nodes[0]) : 0;
    nodes.forEach(function (node) {
      if (used >= Math.max(1, 10 * current) || far(node) !== level) {
        current += 1;
        used = 0;
        level = far(node);
      }
      ring[node.id()] = current;
      used += 1;
    });
    return {
      name: "concentric", padding: 20, minNodeSpacing: 6, levelWidth: function () { return 1; },
      concentric: function (node) { return current - (ring[node.id()] || 0); },
    };
  }

  // The identifiers are laid out by the layout; what conflicts dropped goes in a row below.
  function placeAll(layout) {
    var cy = state.cy;
    var main = cy.elements().not(".conflict, .dropped");
    main.layout(layout).run();
    var box = main.boundingBox();
    var x = box.x1;
    cy.nodes(".conflict").forEach(function (group) {
      group.children().forEach(function (child, k) {
        child.position({ x: x + k * 110, y: box.y2 + 90 });
      });
      x += group.children().length * 110 + 50;
    });
    cy.fit(undefined, 30);
  }

  function bindGraph() {
    var cy = state.cy;
    var tip = $("tip");
    cy.on("mouseover", "node, edge", function (event) {
      var target = event.target;
      var text = target.data("tip");
      var node = target.data("node");
      if (node) {
        var i = node.identifier;
        text = i.kind + " " + (i.value === null ? "(denied)" : i.value) + "\nfirst seen " + when(i.firstSeen) +
          "\nlast seen " + when(i.lastSeen) + "\nsources: " + i.sources.join(", ") +
          (node.twins ? "\nshown to your role like " + node.twins + " other(s): its links are not drawn" : "");
      }
      if (!text) return;
      tip.textContent = text;
      var where = event.renderedPosition || target.renderedPosition();
      tip.style.left = Math.round(where.x + 14) + "px";
      tip.style.top = Math.round(where.y + $("toolbar").offsetHeight + 14) + "px";
      tip.hidden = false;
    });
    cy.on("mouseout", "node, edge", function () {
      tip.hidden = true;
    });
    $("graph").addEventListener("mouseleave", function () {
      tip.hidden = true;
    });
    cy.on("tap", "node.identifier", function (event) {
      var node = event.target.data("node");
      var at = state.picked.indexOf(node);
      if (at >= 0) state.picked.splice(at, 1);
      else state.picked.push(node);
      event.target.toggleClass("picked", at < 0);
      updateActions();
    });
    cy.on("tap", "edge", function (event) {
      $("details").replaceChildren(h("h3", { text: "Link" }), h("div", { class: "mono", text: event.target.data("tip") }));
    });
  }

  function legend() {
    var kinds = {};
    state.nodes.forEach(function (n) { kinds[n.kind] = true; });
    var items = Object.keys(kinds).sort(function (a, b) { return rank(a) - rank(b); }).map(function (kind) {
      var swatch = h("span", { class: "swatch" });
      swatch.style.background = colour(kind);
      return h("span", null, swatch, kind);
    });
    var merge = h("span", { class: "swatch line" });
    merge.style.background = "#f59f00";
    items.push(h("span", null, merge, "merge boundary"));
    if (state.customer.conflicts.length) items.push(h("span", { class: "muted", text: "red boxes: dropped by conflicts" }));
    $("legend").replaceChildren.apply($("legend"), items);
  }

  function notes(read, unmatched) {
    var messages = [];
    if (read.failed) messages.push("The links could not be read, so no edges are drawn: " + read.failed);
    var alike = {};
    state.nodes.forEach(function (n) {
      if (n.twins) alike[n.kind + " " + short(n.value)] = n.twins + 1;
    });
    var names = Object.keys(alike);
    if (unmatched.alike) {
      messages.push(unmatched.alike + " of " + read.links.length + " link(s) not drawn: your role sees " +
        names.map(function (name) { return name + " (×" + alike[name] + ")"; }).join(", ") +
        " as more than one identifier of this customer (masked or denied alike), so which one a link names cannot be told.");
    } else if (names.length) {
      messages.push(names.length + " value(s) your role sees as more than one identifier: " + names.join(", ") + ".");
    }
    if (unmatched.absent) {
      messages.push(unmatched.absent + " link(s) name identifiers this profile did not hold when it was read" +
        " (it changed meanwhile): find the customer again to redraw.");
    }
    var hidden = state.nodes.filter(function (n) { return !n.clear; });
    if (hidden.length) {
      messages.push(hidden.length + " identifier(s) are masked, hashed or denied to your role (dashed):" +
        " \u201cExplain link\u201d needs two it reads clear.");
    }
    $("notes").replaceChildren.apply($("notes"), messages.map(function (m) { return h("div", { text: m }); }));
  }

  function updateActions() {
    var picked = state.picked;
    $("picked").textContent = picked.length
      ? "Picked: " + picked.map(function (n) { return n.kind + " " + short(n.value); }).join(", ")
      : "Click identifiers to pick them.";
    $("explain").disabled = picked.length !== 2;
    $("clear").disabled = !picked.length;
    $("split").hidden = !state.admin;
    $("split").disabled = !picked.length || !state.customer || picked.length >= state.customer.identifiers.length;
  }

  function clearPicks() {
    state.picked = [];
    if (state.cy) state.cy.elements().removeClass("picked path faded");
    $("details").replaceChildren();
    updateActions();
  }

  function explain() {
    var a = state.picked[0];
    var b = state.picked[1];
    if (!a.clear || !b.clear) {
      $("details").replaceChildren(h("p", { class: "muted", text: "Your role does not read both values clear, and the API explains links only by clear values." }));
      return Promise.resolve();
    }
    return gql(EXPLAIN, { a: { kind: a.kind, value: a.value }, b: { kind: b.kind, value: b.value } })
      .then(function (result) {
        if (result.errors.length) throw new ApiError(result.errors, 200);
        var answer = result.data.explainLink;
        var cy = state.cy;
        cy.elements().removeClass("path").addClass("faded");
        if (!answer.linked) {
          $("details").replaceChildren(h("p", { text: "These two are not linked." }));
          return;
        }
        answer.path.forEach(function (link) {
          var from = nodeOf(link.from);
          var to = nodeOf(link.to);
          if (!from || !to) return;
          var edge = cy.edges().filter(function (e) {
            return edgeKey(e.source().id(), e.target().id()) === edgeKey(from.id, to.id);
          });
          if (!edge.length) {
            edge = cy.add({ group: "edges", data: { source: from.id, target: to.id, tip: evidence(link) }, classes: "link explained" });
          }
          edge.removeClass("faded").addClass("path");
          cy.getElementById(from.id).removeClass("faded").addClass("path");
          cy.getElementById(to.id).removeClass("faded").addClass("path");
        });
        $("details").replaceChildren(
          h("h3", { text: "Why these two are one customer: " + answer.path.length + " link(s)" }),
          h("ol", { class: "path" }, answer.path.map(function (link) {
            return h("li", { class: "mono", text: evidence(link).replace(/\n/g, " · ") });
          }))
        );
      })
      .catch(function (error) {
        $("details").replaceChildren(h("p", { class: "muted", text: error.message }));
      });
  }

  function undo(record) {
    var question = "Undo merge " + record.id + "?\nThe identifiers it brought in go back to customer " +
      record.absorbedId + ".";
    if (!window.confirm(question)) return Promise.resolve();
    say("Undoing…");
    return gql(UNDO, { id: record.id })
      .then(function (result) {
        if (result.errors.length) throw new ApiError(result.errors, 200);
        return load({ id: state.customer.id }).then(function () {
          say("Merge " + record.id + " undone: " + state.customer.identifiers.length + " identifiers left here.");
        });
      })
      .catch(function (error) {
        say(error.message, true);
      });
  }

  function split() {
    var picked = state.picked.slice();
    var hidden = picked.filter(function (n) { return !n.clear; });
    if (hidden.length) return say("Split needs identifiers your role reads clear.", true);
    var question = "Split " + picked.length + " identifier(s) off customer " + state.customer.id +
      " into a new customer?\n" + picked.map(function (n) { return n.kind + " " + n.value; }).join("\n");
    if (!window.confirm(question)) return Promise.resolve();
    say("Splitting…");
    var identifiers = picked.map(function (n) { return { kind: n.kind, value: n.value }; });
    return gql(SPLIT, { customer: state.customer.id, identifiers: identifiers })
      .then(function (result) {
        if (result.errors.length) throw new ApiError(result.errors, 200);
        var record = result.data.unmerge;
        return load({ id: state.customer.id }).then(function () {
          say("Split off into customer " + record.absorbedId + ".");
        });
      })
      .catch(function (error) {
        say(error.message, true);
      });
  }

  // --- wiring ----------------------------------------------------------------------

  $("key-form").addEventListener("submit", function (event) {
    event.preventDefault();
    say("");
    useKey($("key").value.trim()).catch(function (error) {
      say(error.message, true);
    });
  });
  $("forget").addEventListener("click", function () {
    useKey("");
    say("Key forgotten.");
  });
  $("search").addEventListener("submit", function (event) {
    event.preventDefault();
    find($("kind").value, $("value").value);
  });
  $("more").addEventListener("click", function () {
    loadCustomers().catch(function (error) { say(error.message, true); });
  });
  $("explain").addEventListener("click", explain);
  $("split").addEventListener("click", split);
  $("clear").addEventListener("click", clearPicks);

  if (state.key) {
    useKey(state.key).catch(function (error) {
      say(error.message, true);
    });
  }
})();

// Reads one profile from c360 with a key and a trusted document's id, as a public client on
// another origin would; the URL's fragment says where: #api=...&key=...&document=...&id=...
(function () {
  var params = new URLSearchParams(location.hash.slice(1));
  var result = document.getElementById("result");
  fetch(params.get("api") + "/graphql", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer " + params.get("key") },
    body: JSON.stringify({ documentId: params.get("document"), variables: { id: params.get("id") } }),
  })
    .then(function (response) { return response.text(); })
    .then(function (text) { result.textContent = text; })
    .catch(function (error) { result.textContent = "refused: " + error; })
    .then(function () { result.setAttribute("data-done", ""); });
})();

// Parley's /docs: Swagger UI (vendor/, from npm's swagger-ui-dist) on the gateway's own
// /openapi.json. No validator badge and no other request leaves the gateway.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    validatorUrl: null,
    persistAuthorization: false,
  });
});

"use strict";
// Swagger UI on this server's schema (the bundle's files come from this server too).
window.addEventListener("load", () => {
  window.ui = window.SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});

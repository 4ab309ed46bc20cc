// Starts Swagger UI. It lives in a file, not inline in /docs, so the page's
// Content-Security-Policy can forbid inline script (script-src 'self').
(function () {
  "use strict";
  var url = document.querySelector('meta[name="openapi-url"]').content;
  window.ui = window.SwaggerUIBundle({
    url: url,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null, // no validator badge fetched from another origin
    presets: [window.SwaggerUIBundle.presets.apis, window.SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();

document.getElementById("app").textContent = "Route: " + location.pathname;

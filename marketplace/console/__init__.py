"""The administrators' console: server-rendered pages under /console (Jinja2 templates, htmx, Apache ECharts)
over the same services as the API, signed in with a session cookie and protected by CSRF tokens."""

"""`llmplan web`: the planner in a browser. `app.create_app` is the FastAPI app (the JSON API and the page in
`static/`); `requests` the request bodies (the CLI's options); `service` what each endpoint computes, the
answer cache and the bounded plan worker. Needs the `web` extra (fastapi, uvicorn). docs/web.md."""

"""HTTP layer: flask-smorest blueprints. Handlers parse, authorize, call one store function and
shape the response; rules and SQL live in the store."""

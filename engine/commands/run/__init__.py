"""What commands do, where importing it costs what a `show` should not pay: each module here
holds the handlers that engine/commands/<same name>.py declares with `GRAMMAR.declare(...,
runs="engine.commands.run.<module>:<function>")`, and is imported when one of them first runs
(engine/commands/__init__.py explains the pattern)."""

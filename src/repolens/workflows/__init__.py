"""CodeMie-style workflows in the core, free of any HTTP dialect: YAML definitions
(``config``), the safe condition evaluator (``expressions``), the durable engine (``engine``) and
its job entry point (``jobs``). ``service`` is what surfaces call."""

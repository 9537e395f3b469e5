; Python: classes, functions (methods when nested in a class), module constants.
(class_definition
  name: (identifier) @name
  body: (block . (expression_statement (string) @doc)?)) @definition.class

(function_definition
  name: (identifier) @name
  body: (block . (expression_statement (string) @doc)?)) @definition.function

(module
  (expression_statement
    (assignment left: (identifier) @name) @definition.constant)
  (#match? @name "^[A-Z][A-Z0-9_]+$"))

(module
  (expression_statement
    (assignment left: (identifier) @name type: (type (identifier) @_t)) @definition.type)
  (#eq? @_t "TypeAlias"))

(type_alias_statement left: (type (identifier) @name)) @definition.type

; relations
(call function: [(identifier) @call (attribute attribute: (identifier) @call)])
(import_statement name: [(dotted_name) @import (aliased_import name: (dotted_name) @import)])
(import_from_statement module_name: [(dotted_name) @import (relative_import (dotted_name)) @import])
; `from . import x` / `from .. import x`: the bare prefix names nothing, so the modules are the names
(import_from_statement
  module_name: (relative_import . (import_prefix) .)
  name: [(dotted_name) @import (aliased_import name: (dotted_name) @import)])
(class_definition superclasses: (argument_list [(identifier) @inherit (attribute) @inherit]))
(type (identifier) @reference)
(type (attribute) @reference)
(type (generic_type (identifier) @reference))
((identifier) @reference (#match? @reference "^[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*$"))

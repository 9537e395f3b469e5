; Scala 2 and 3: classes and case classes, objects (modules), traits, enums, defs (methods
; inside templates), type aliases, and `val`s with Capitalized or UPPER names at the top level
; or in an object (constants).
(class_definition name: (identifier) @name) @definition.class
(object_definition name: (identifier) @name) @definition.module
(trait_definition name: (identifier) @name) @definition.trait
(enum_definition name: (identifier) @name) @definition.enum
(function_definition name: (identifier) @name) @definition.function
(function_declaration name: (identifier) @name) @definition.function
(type_definition name: (type_identifier) @name) @definition.type
(compilation_unit
  (val_definition pattern: (identifier) @name) @definition.constant
  (#match? @name "^[A-Z]"))
(object_definition
  body: (template_body
    (val_definition pattern: (identifier) @name) @definition.constant)
  (#match? @name "^[A-Z]"))

; relations
(call_expression function: [(identifier) @call (field_expression field: (identifier) @call)])
(instance_expression [(type_identifier) @call (generic_type type: (type_identifier) @call)])
; imports name what they bring in: `import a.b.C` -> C, `import a.{B, C}` -> B, C, `import a.b._` -> b
(import_declaration (identifier) @import .)
(import_declaration (identifier) @import . (namespace_wildcard))
(import_declaration (namespace_selectors [(identifier) @import (arrow_renamed_identifier name: (identifier) @import)]))
; (only the first parent carries the `type:` field, so match the children without it)
(extends_clause [(type_identifier) @inherit (generic_type type: (type_identifier) @inherit)])
(type_identifier) @reference

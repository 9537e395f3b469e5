; Kotlin: classes (data/sealed/open), interfaces, enum classes, objects, named companion
; objects, functions (methods inside classes), `const val` constants, type aliases.
; An unnamed `companion object` is not a symbol: its members read as `Outer.member`, the
; way Kotlin code calls them.
(class_declaration
  (modifiers)? @_mods
  "class"
  name: (identifier) @name
  (#not-match? @_mods "\\benum\\b")) @definition.class
(class_declaration
  (modifiers (class_modifier) @_enum)
  "class"
  name: (identifier) @name
  (#eq? @_enum "enum")) @definition.enum
(class_declaration "interface" name: (identifier) @name) @definition.interface
(object_declaration name: (identifier) @name) @definition.class
(companion_object name: (identifier) @name) @definition.class
(function_declaration name: (identifier) @name) @definition.function
(property_declaration
  (modifiers (property_modifier) @_const)
  (variable_declaration (identifier) @name)
  (#eq? @_const "const")) @definition.constant
(type_alias type: (identifier) @name) @definition.type

; relations
(call_expression . (identifier) @call)
(call_expression . (navigation_expression (identifier) @call .))
(import (qualified_identifier) @import)
(delegation_specifier [(user_type . (identifier) @inherit)
                       (constructor_invocation (user_type . (identifier) @inherit))])
(user_type . (identifier) @reference)

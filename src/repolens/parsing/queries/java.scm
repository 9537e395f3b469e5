; Java: classes, interfaces, enums, records, annotations, methods, constructors, constants.
(class_declaration name: (identifier) @name) @definition.class
(interface_declaration name: (identifier) @name) @definition.interface
(enum_declaration name: (identifier) @name) @definition.enum
(record_declaration name: (identifier) @name) @definition.class
(annotation_type_declaration name: (identifier) @name) @definition.interface
(method_declaration name: (identifier) @name) @definition.method
(constructor_declaration name: (identifier) @name) @definition.method
(compact_constructor_declaration name: (identifier) @name) @definition.method
(annotation_type_element_declaration name: (identifier) @name) @definition.method
(enum_body (enum_constant name: (identifier) @name) @definition.constant)
; fields of interfaces and annotation types are implicitly static final
(constant_declaration declarator: (variable_declarator name: (identifier) @name)) @definition.constant
(field_declaration
  (modifiers) @_mods
  declarator: (variable_declarator name: (identifier) @name)
  (#match? @_mods "static")
  (#match? @_mods "final")) @definition.constant

; relations
(method_invocation name: (identifier) @call)
(object_creation_expression
  type: [(type_identifier) @call (scoped_type_identifier) @call (generic_type [(type_identifier) (scoped_type_identifier)] @call)])
(import_declaration [(scoped_identifier) @import (identifier) @import])
(superclass
  [(type_identifier) @inherit (scoped_type_identifier) @inherit (generic_type [(type_identifier) (scoped_type_identifier)] @inherit)])
(super_interfaces
  (type_list [(type_identifier) @inherit (scoped_type_identifier) @inherit (generic_type [(type_identifier) (scoped_type_identifier)] @inherit)]))
(extends_interfaces
  (type_list [(type_identifier) @inherit (scoped_type_identifier) @inherit (generic_type [(type_identifier) (scoped_type_identifier)] @inherit)]))
(type_identifier) @reference

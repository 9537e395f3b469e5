; Go: functions, methods (parent = receiver type), structs, interfaces, other types, constants.
(function_declaration name: (identifier) @name) @definition.function
(method_declaration
  receiver: (parameter_list
    (parameter_declaration
      type: [(type_identifier) @receiver
             (pointer_type (type_identifier) @receiver)
             (generic_type type: (type_identifier) @receiver)
             (pointer_type (generic_type type: (type_identifier) @receiver))]))
  name: (field_identifier) @name) @definition.method
(type_declaration (type_spec name: (type_identifier) @name type: (struct_type)) @definition.struct)
(type_declaration (type_spec name: (type_identifier) @name type: (interface_type)) @definition.interface)
(type_declaration
  (type_spec name: (type_identifier) @name
    type: [(type_identifier) (qualified_type) (map_type) (slice_type) (array_type)
           (function_type) (pointer_type) (channel_type) (generic_type)]) @definition.type)
(type_declaration (type_alias name: (type_identifier) @name) @definition.type)
; `const X = 1` is the whole declaration (its doc comment sits before `const`); in `const ( ... )` each spec
(source_file
  (const_declaration (const_spec name: (identifier) @name)) @definition.constant
  (#not-match? @definition.constant "^const\\s*\\("))
(source_file
  (const_declaration (const_spec name: (identifier) @name) @definition.constant) @_group
  (#match? @_group "^const\\s*\\("))
(method_elem name: (field_identifier) @name) @definition.method

; relations
(call_expression function: [(identifier) @call (selector_expression field: (field_identifier) @call)])
(import_spec path: (interpreted_string_literal) @import)
(struct_type (field_declaration_list (field_declaration . [(type_identifier) @inherit (pointer_type (type_identifier) @inherit) (qualified_type) @inherit (generic_type type: [(type_identifier) (qualified_type)] @inherit)] .)))
(interface_type (type_elem [(type_identifier) @inherit (qualified_type) @inherit]))
(type_identifier) @reference

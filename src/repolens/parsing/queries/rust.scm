; Rust: functions (methods inside impl/trait), structs, unions (structs), enums, traits,
; modules with a body, type aliases and associated types, const/static items (constants),
; macro_rules! (functions). `impl Type` and `impl Trait for Type` are scopes named by Type,
; so their functions are `Type.method`.
(function_item name: (identifier) @name) @definition.function
(function_signature_item name: (identifier) @name) @definition.function
(struct_item name: (type_identifier) @name) @definition.struct
(union_item name: (type_identifier) @name) @definition.struct
(enum_item name: (type_identifier) @name) @definition.enum
(trait_item name: (type_identifier) @name) @definition.trait
(mod_item name: (identifier) @name body: (declaration_list)) @definition.module
(type_item name: (type_identifier) @name) @definition.type
(associated_type name: (type_identifier) @name) @definition.type
(const_item name: (identifier) @name) @definition.constant
(static_item name: (identifier) @name) @definition.constant
(macro_definition name: (identifier) @name) @definition.function
(impl_item
  type: [(type_identifier) @scope.name
         (generic_type type: (type_identifier) @scope.name)
         (scoped_type_identifier name: (type_identifier) @scope.name)
         (generic_type type: (scoped_type_identifier name: (type_identifier) @scope.name))]) @scope

; relations
(call_expression function: [(identifier) @call
                            (field_expression field: (field_identifier) @call)
                            (scoped_identifier name: (identifier) @call)
                            (generic_function function: [(identifier) @call
                                                         (field_expression field: (field_identifier) @call)
                                                         (scoped_identifier name: (identifier) @call)])])
(macro_invocation macro: (identifier) @call)
(use_declaration argument: [(scoped_identifier) @import
                            (identifier) @import
                            (use_as_clause path: (_) @import)
                            (scoped_use_list path: (_) @import)
                            (use_wildcard (_) @import)])
(trait_item bounds: (trait_bounds [(type_identifier) @inherit (scoped_type_identifier) @inherit (generic_type type: (type_identifier) @inherit)]))
(type_identifier) @reference

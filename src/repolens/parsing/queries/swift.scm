; Swift: classes and actors, structs, enums, protocols (interfaces), extensions (scopes named
; by the extended type, so their members are `Type.member`), functions (methods inside a
; type), init/deinit (methods), protocol requirements (methods), typealiases (types).
(class_declaration declaration_kind: ["class" "actor"] name: (type_identifier) @name) @definition.class
(class_declaration declaration_kind: "struct" name: (type_identifier) @name) @definition.struct
(class_declaration declaration_kind: "enum" name: (type_identifier) @name) @definition.enum
(class_declaration
  declaration_kind: "extension"
  name: [(user_type . (type_identifier) @scope.name .)
         (user_type (type_identifier) @scope.name .)]) @scope
(protocol_declaration name: (type_identifier) @name) @definition.interface
(function_declaration name: (simple_identifier) @name) @definition.function
(protocol_function_declaration name: (simple_identifier) @name) @definition.method
(init_declaration "init" @name) @definition.method
(deinit_declaration "deinit" @name) @definition.method
(typealias_declaration name: (type_identifier) @name) @definition.type

; relations
(call_expression . [(simple_identifier) @call
                    (navigation_expression suffix: (navigation_suffix suffix: (simple_identifier) @call))])
(import_declaration (identifier) @import)
; (an extension's conformances have no symbol to come from: the extension is a scope)
(class_declaration
  declaration_kind: ["class" "struct" "enum" "actor"]
  (inheritance_specifier inherits_from: (user_type (type_identifier) @inherit .)))
(protocol_declaration (inheritance_specifier inherits_from: (user_type (type_identifier) @inherit .)))
(user_type (type_identifier) @reference)

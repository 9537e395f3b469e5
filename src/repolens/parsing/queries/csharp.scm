; C#: namespaces (modules, block and file-scoped), classes, structs, interfaces, enums,
; records (`record struct` is a struct), methods, constructors and destructors (methods),
; operators are not named and not captured; delegates (types), const fields (constants).
; A file-scoped namespace spans only its own line: the types after it are not nested in it.
(namespace_declaration name: [(identifier) (qualified_name)] @name) @definition.module
(file_scoped_namespace_declaration name: [(identifier) (qualified_name)] @name) @definition.module
(class_declaration name: (identifier) @name) @definition.class
(struct_declaration name: (identifier) @name) @definition.struct
(interface_declaration name: (identifier) @name) @definition.interface
(enum_declaration name: (identifier) @name) @definition.enum
(record_declaration "struct" name: (identifier) @name) @definition.struct
(record_declaration ["record" "class"] . name: (identifier) @name) @definition.class
(delegate_declaration name: (identifier) @name) @definition.type
(method_declaration name: (identifier) @name) @definition.method
(constructor_declaration name: (identifier) @name) @definition.method
(destructor_declaration name: (identifier) @name) @definition.method
(field_declaration
  (modifier) @_const
  (variable_declaration (variable_declarator name: (identifier) @name))
  (#eq? @_const "const")) @definition.constant

; relations
(invocation_expression function: [(identifier) @call
                                  (member_access_expression name: (identifier) @call)
                                  (generic_name (identifier) @call)
                                  (member_access_expression name: (generic_name (identifier) @call))])
(object_creation_expression type: [(identifier) @call (qualified_name name: (identifier) @call) (generic_name (identifier) @call)])
(using_directive [(identifier) @import (qualified_name) @import])
(base_list [(identifier) @inherit (qualified_name) @inherit (generic_name (identifier) @inherit)])
(base_list (primary_constructor_base_type type: [(identifier) @inherit (generic_name (identifier) @inherit)]))

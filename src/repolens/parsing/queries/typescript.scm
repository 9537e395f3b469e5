; TypeScript and TSX: JavaScript's definitions plus interfaces, type aliases, enums, namespaces.
(class_declaration name: (type_identifier) @name) @definition.class
(abstract_class_declaration name: (type_identifier) @name) @definition.class
(class name: (type_identifier) @name) @definition.class
(interface_declaration name: (type_identifier) @name) @definition.interface
(type_alias_declaration name: (type_identifier) @name) @definition.type
(enum_declaration name: (identifier) @name) @definition.enum
(internal_module name: [(identifier) (nested_identifier)] @name) @definition.module
(module name: [(identifier) @name (nested_identifier) @name (string (string_fragment) @name)]) @definition.module
(function_declaration name: (identifier) @name) @definition.function
(function_signature name: (identifier) @name) @definition.function
(generator_function_declaration name: (identifier) @name) @definition.function
(class_body
  (method_definition
    name: [(property_identifier) @name (private_property_identifier) @name (string (string_fragment) @name)]) @definition.method)
; a function-valued class field (`handle = () => {}`) is a method bound to the instance
(class_body
  (public_field_definition
    name: [(property_identifier) (private_property_identifier)] @name
    value: [(arrow_function) (function_expression) (generator_function)]) @definition.method)
; object-literal members are functions; inside a named object (see @scope below) they become its methods
(object
  (method_definition
    name: [(property_identifier) @name (private_property_identifier) @name (string (string_fragment) @name)]) @definition.function)
(pair
  key: [(property_identifier) @name (string (string_fragment) @name)]
  value: [(arrow_function) (function_expression) (generator_function)]) @definition.function
; `const api = { get() {}, put: () => {} }` names the parent of its members (constants keep their own symbol)
(variable_declarator
  name: (identifier) @scope.name
  value: (object)
  (#not-match? @scope.name "^[A-Z][A-Z0-9_]+$")) @scope
(pair key: (property_identifier) @scope.name value: (object)) @scope
(method_signature name: [(property_identifier) (private_property_identifier) (string)] @name) @definition.method
(abstract_method_signature name: [(property_identifier) (private_property_identifier)] @name) @definition.method
(lexical_declaration
  (variable_declarator
    name: (identifier) @name
    value: [(arrow_function) (function_expression) (generator_function)]) @definition.function)
(variable_declaration
  (variable_declarator
    name: (identifier) @name
    value: [(arrow_function) (function_expression) (generator_function)]) @definition.function)
(program
  (lexical_declaration
    (variable_declarator
      name: (identifier) @name
      value: [(string) (number) (object) (array) (template_string)]) @definition.constant)
  (#match? @name "^[A-Z][A-Z0-9_]+$"))
(program
  (export_statement
    (lexical_declaration
      (variable_declarator
        name: (identifier) @name
        value: [(string) (number) (object) (array) (template_string)]) @definition.constant))
  (#match? @name "^[A-Z][A-Z0-9_]+$"))
; constants declared directly in a namespace body
(internal_module
  body: (statement_block
    [(lexical_declaration
       (variable_declarator
         name: (identifier) @name
         value: [(string) (number) (object) (array) (template_string)]) @definition.constant)
     (export_statement
       (lexical_declaration
         (variable_declarator
           name: (identifier) @name
           value: [(string) (number) (object) (array) (template_string)]) @definition.constant))])
  (#match? @name "^[A-Z][A-Z0-9_]+$"))

; relations
(call_expression function: [(identifier) @call (member_expression property: [(property_identifier) (private_property_identifier)] @call)])
(new_expression constructor: [(identifier) @call (member_expression property: (property_identifier) @call)])
(import_statement source: (string (string_fragment) @import))
(import_require_clause source: (string (string_fragment) @import))
(call_expression function: (identifier) @_req arguments: (arguments (string (string_fragment) @import)) (#eq? @_req "require"))
(extends_clause value: [(identifier) @inherit (member_expression) @inherit])
(implements_clause (type_identifier) @inherit)
(implements_clause (generic_type name: (type_identifier) @inherit))
(extends_type_clause type: [(type_identifier) @inherit (generic_type name: (type_identifier) @inherit)])
(type_identifier) @reference

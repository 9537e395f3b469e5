; JavaScript: classes, functions, methods, arrow functions bound to names, exported constants.
(class_declaration name: (identifier) @name) @definition.class
(class name: (identifier) @name) @definition.class
(function_declaration name: (identifier) @name) @definition.function
(generator_function_declaration name: (identifier) @name) @definition.function
(class_body
  (method_definition
    name: [(property_identifier) @name (private_property_identifier) @name (string (string_fragment) @name)]) @definition.method)
; a function-valued class field (`handle = () => {}`) is a method bound to the instance
(class_body
  (field_definition
    property: [(property_identifier) (private_property_identifier)] @name
    value: [(arrow_function) (function_expression) (generator_function)]) @definition.method)
; object-literal members are functions; inside a named object (see @scope below) they become its methods
(object
  (method_definition
    name: [(property_identifier) @name (private_property_identifier) @name (string (string_fragment) @name)]) @definition.function)
(lexical_declaration
  (variable_declarator
    name: (identifier) @name
    value: [(arrow_function) (function_expression) (generator_function)]) @definition.function)
(variable_declaration
  (variable_declarator
    name: (identifier) @name
    value: [(arrow_function) (function_expression) (generator_function)]) @definition.function)
; `Legacy.prototype.greet = function () {}` is a method of Legacy (pre-class JavaScript)
(assignment_expression
  left: (member_expression
    object: (member_expression object: (identifier) @receiver property: (property_identifier) @_prototype)
    property: (property_identifier) @name)
  right: [(arrow_function) (function_expression)]
  (#eq? @_prototype "prototype")) @definition.method
(assignment_expression
  left: (member_expression property: (property_identifier) @name)
  right: [(arrow_function) (function_expression)]) @definition.function
(pair
  key: [(property_identifier) @name (string (string_fragment) @name)]
  value: [(arrow_function) (function_expression) (generator_function)]) @definition.function
; `const api = { get() {}, put: () => {} }` names the parent of its members (constants keep their own symbol)
(variable_declarator
  name: (identifier) @scope.name
  value: (object)
  (#not-match? @scope.name "^[A-Z][A-Z0-9_]+$")) @scope
(pair key: (property_identifier) @scope.name value: (object)) @scope
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

; relations
(call_expression function: [(identifier) @call (member_expression property: [(property_identifier) (private_property_identifier)] @call)])
(new_expression constructor: [(identifier) @call (member_expression property: (property_identifier) @call)])
(import_statement source: (string (string_fragment) @import))
(call_expression function: (identifier) @_req arguments: (arguments (string (string_fragment) @import)) (#eq? @_req "require"))
(class_heritage [(identifier) @inherit (member_expression) @inherit])
((identifier) @reference (#match? @reference "^[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*$"))

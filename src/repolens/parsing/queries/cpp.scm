; C++: C's definitions plus namespaces (modules), classes, methods (defined or declared in a
; class body), out-of-line methods, templates (wrappers), enum classes, `using` aliases and
; const/constexpr globals. `void ns::Foo::bar() {}` is the method `ns.Foo.bar` with parent
; `ns.Foo`: each scope of the qualified name is a @receiver, and inside `namespace ns {}` the
; receiver is relative to it. (A namespace-qualified free function reads as a method too.)
; Free-function prototypes outside classes are not symbols (their definitions are).
(namespace_definition name: [(namespace_identifier) (nested_namespace_specifier)] @name) @definition.module

; functions, and methods defined inside a class body
(function_definition
  declarator: [(function_declarator declarator: [(identifier) (field_identifier) (destructor_name) (operator_name)] @name)
               (pointer_declarator declarator: (function_declarator declarator: [(identifier) (field_identifier) (operator_name)] @name))
               (reference_declarator (function_declarator declarator: [(identifier) (field_identifier) (operator_name)] @name))]) @definition.function

; out-of-line methods: Foo::bar, ns::Foo::bar, a::b::Foo::bar
(function_definition
  declarator: [(function_declarator declarator: (qualified_identifier scope: (_) @receiver name: [(identifier) (destructor_name) (operator_name)] @name))
               (pointer_declarator declarator: (function_declarator declarator: (qualified_identifier scope: (_) @receiver name: [(identifier) (operator_name)] @name)))
               (reference_declarator (function_declarator declarator: (qualified_identifier scope: (_) @receiver name: [(identifier) (operator_name)] @name)))]) @definition.method
(function_definition
  declarator: [(function_declarator declarator: (qualified_identifier scope: (_) @receiver name: (qualified_identifier scope: (_) @receiver name: [(identifier) (destructor_name) (operator_name)] @name)))
               (pointer_declarator declarator: (function_declarator declarator: (qualified_identifier scope: (_) @receiver name: (qualified_identifier scope: (_) @receiver name: [(identifier) (operator_name)] @name))))
               (reference_declarator (function_declarator declarator: (qualified_identifier scope: (_) @receiver name: (qualified_identifier scope: (_) @receiver name: [(identifier) (operator_name)] @name))))]) @definition.method
(function_definition
  declarator: (function_declarator
    declarator: (qualified_identifier scope: (_) @receiver
      name: (qualified_identifier scope: (_) @receiver
        name: (qualified_identifier scope: (_) @receiver name: [(identifier) (destructor_name) (operator_name)] @name))))) @definition.method

; methods declared in a class body (their doc comments usually live here)
(field_declaration_list
  (field_declaration
    declarator: [(function_declarator declarator: [(field_identifier) (destructor_name) (operator_name)] @name)
                 (pointer_declarator declarator: (function_declarator declarator: [(field_identifier) (operator_name)] @name))
                 (reference_declarator (function_declarator declarator: [(field_identifier) (operator_name)] @name))]) @definition.method)
(field_declaration_list
  (declaration
    declarator: [(function_declarator declarator: [(identifier) (destructor_name) (operator_name)] @name)
                 (pointer_declarator declarator: (function_declarator declarator: [(identifier) (operator_name)] @name))
                 (reference_declarator (function_declarator declarator: [(identifier) (operator_name)] @name))]) @definition.method)
(field_declaration_list
  (template_declaration
    (declaration
      declarator: [(function_declarator declarator: [(identifier) (operator_name)] @name)
                   (pointer_declarator declarator: (function_declarator declarator: [(identifier) (operator_name)] @name))
                   (reference_declarator (function_declarator declarator: [(identifier) (operator_name)] @name))]) @definition.method))

; class-likes with a body, wherever they stand except as the body of a typedef: a typedef of
; a body is one symbol named by the typedef (as in C), so its parents are listed one by one
(translation_unit
  [(class_specifier name: [(type_identifier) @name (template_type name: (type_identifier) @name)] body: (_)) @definition.class
   (struct_specifier name: [(type_identifier) @name (template_type name: (type_identifier) @name)] body: (_)) @definition.struct
   (union_specifier name: (type_identifier) @name body: (_)) @definition.struct
   (enum_specifier name: (type_identifier) @name body: (_)) @definition.enum])
(declaration_list
  [(class_specifier name: [(type_identifier) @name (template_type name: (type_identifier) @name)] body: (_)) @definition.class
   (struct_specifier name: [(type_identifier) @name (template_type name: (type_identifier) @name)] body: (_)) @definition.struct
   (union_specifier name: (type_identifier) @name body: (_)) @definition.struct
   (enum_specifier name: (type_identifier) @name body: (_)) @definition.enum])
(template_declaration
  [(class_specifier name: [(type_identifier) @name (template_type name: (type_identifier) @name)] body: (_)) @definition.class
   (struct_specifier name: [(type_identifier) @name (template_type name: (type_identifier) @name)] body: (_)) @definition.struct
   (union_specifier name: (type_identifier) @name body: (_)) @definition.struct
   (enum_specifier name: (type_identifier) @name body: (_)) @definition.enum])
(preproc_if
  [(class_specifier name: [(type_identifier) @name (template_type name: (type_identifier) @name)] body: (_)) @definition.class
   (struct_specifier name: [(type_identifier) @name (template_type name: (type_identifier) @name)] body: (_)) @definition.struct
   (union_specifier name: (type_identifier) @name body: (_)) @definition.struct
   (enum_specifier name: (type_identifier) @name body: (_)) @definition.enum])
(preproc_ifdef
  [(class_specifier name: [(type_identifier) @name (template_type name: (type_identifier) @name)] body: (_)) @definition.class
   (struct_specifier name: [(type_identifier) @name (template_type name: (type_identifier) @name)] body: (_)) @definition.struct
   (union_specifier name: (type_identifier) @name body: (_)) @definition.struct
   (enum_specifier name: (type_identifier) @name body: (_)) @definition.enum])
(preproc_else
  [(class_specifier name: [(type_identifier) @name (template_type name: (type_identifier) @name)] body: (_)) @definition.class
   (struct_specifier name: [(type_identifier) @name (template_type name: (type_identifier) @name)] body: (_)) @definition.struct
   (union_specifier name: (type_identifier) @name body: (_)) @definition.struct
   (enum_specifier name: (type_identifier) @name body: (_)) @definition.enum])
(preproc_elif
  [(class_specifier name: [(type_identifier) @name (template_type name: (type_identifier) @name)] body: (_)) @definition.class
   (struct_specifier name: [(type_identifier) @name (template_type name: (type_identifier) @name)] body: (_)) @definition.struct
   (union_specifier name: (type_identifier) @name body: (_)) @definition.struct
   (enum_specifier name: (type_identifier) @name body: (_)) @definition.enum])
(declaration
  type: [(class_specifier name: [(type_identifier) @name (template_type name: (type_identifier) @name)] body: (_)) @definition.class
   (struct_specifier name: [(type_identifier) @name (template_type name: (type_identifier) @name)] body: (_)) @definition.struct
   (union_specifier name: (type_identifier) @name body: (_)) @definition.struct
   (enum_specifier name: (type_identifier) @name body: (_)) @definition.enum])
(field_declaration
  type: [(class_specifier name: [(type_identifier) @name (template_type name: (type_identifier) @name)] body: (_)) @definition.class
   (struct_specifier name: [(type_identifier) @name (template_type name: (type_identifier) @name)] body: (_)) @definition.struct
   (union_specifier name: (type_identifier) @name body: (_)) @definition.struct
   (enum_specifier name: (type_identifier) @name body: (_)) @definition.enum])
(type_definition
  type: [(struct_specifier body: (_)) (union_specifier body: (_)) (class_specifier body: (_))]
  declarator: (type_identifier) @name) @definition.struct
(type_definition
  type: (enum_specifier body: (_))
  declarator: (type_identifier) @name) @definition.enum
(type_definition
  type: (_ !body)
  declarator: [(type_identifier) @name
               (pointer_declarator declarator: (type_identifier) @name)
               (array_declarator declarator: (type_identifier) @name)
               (function_declarator declarator: (parenthesized_declarator (pointer_declarator declarator: (type_identifier) @name)))
               (function_declarator declarator: (type_identifier) @name)]) @definition.type
(alias_declaration name: (type_identifier) @name) @definition.type

(preproc_def name: (identifier) @name value: (_)) @definition.constant
(preproc_function_def name: (identifier) @name) @definition.function
(translation_unit
  (declaration (type_qualifier) @_const
    declarator: (init_declarator declarator: [(identifier) @name (pointer_declarator declarator: (identifier) @name)])) @definition.constant
  (#any-of? @_const "const" "constexpr"))
(declaration_list
  (declaration (type_qualifier) @_const
    declarator: (init_declarator declarator: [(identifier) @name (pointer_declarator declarator: (identifier) @name)])) @definition.constant
  (#any-of? @_const "const" "constexpr"))

; relations
(call_expression function: [(identifier) @call
                            (field_expression field: (field_identifier) @call)
                            (qualified_identifier name: (identifier) @call)])
(call_expression
  function: (template_function name: (identifier) @call)
  (#not-match? @call "^(static|dynamic|reinterpret|const)_cast$"))
(new_expression type: [(type_identifier) @call (qualified_identifier name: (type_identifier) @call)])
(preproc_include path: [(system_lib_string) @import (string_literal (string_content) @import)])
(base_class_clause [(type_identifier) @inherit
                    (qualified_identifier name: (type_identifier) @inherit)
                    (template_type name: (type_identifier) @inherit)])
(type_identifier) @reference

; PHP: namespaces (modules), classes, interfaces, traits, enums, functions, methods, and
; constants (top-level `const` and class constants). `namespace A\B;` spans only its line.
(namespace_definition name: (namespace_name) @name) @definition.module
(class_declaration name: (name) @name) @definition.class
(interface_declaration name: (name) @name) @definition.interface
(trait_declaration name: (name) @name) @definition.trait
(enum_declaration name: (name) @name) @definition.enum
(enum_case name: (name) @name) @definition.constant
(function_definition name: (name) @name) @definition.function
(method_declaration name: (name) @name) @definition.method
(const_declaration (const_element (name) @name)) @definition.constant

; relations
(function_call_expression function: [(name) @call (qualified_name (name) @call .)])
(member_call_expression name: (name) @call)
(nullsafe_member_call_expression name: (name) @call)
(scoped_call_expression name: (name) @call)
(object_creation_expression (name) @call (#not-match? @call "^(self|static|parent)$"))
(object_creation_expression (qualified_name (name) @call .))
(namespace_use_clause . [(name) @import (qualified_name) @import])
[(include_expression [(string (string_content) @import) (encapsed_string (string_content) @import)
                      (parenthesized_expression [(string (string_content) @import) (encapsed_string (string_content) @import)])])
 (include_once_expression [(string (string_content) @import) (encapsed_string (string_content) @import)
                           (parenthesized_expression [(string (string_content) @import) (encapsed_string (string_content) @import)])])
 (require_expression [(string (string_content) @import) (encapsed_string (string_content) @import)
                      (parenthesized_expression [(string (string_content) @import) (encapsed_string (string_content) @import)])])
 (require_once_expression [(string (string_content) @import) (encapsed_string (string_content) @import)
                           (parenthesized_expression [(string (string_content) @import) (encapsed_string (string_content) @import)])])]
(base_clause [(name) @inherit (qualified_name) @inherit])
(class_interface_clause [(name) @inherit (qualified_name) @inherit])
(use_declaration [(name) @inherit (qualified_name) @inherit])
(named_type [(name) @reference (qualified_name) @reference])

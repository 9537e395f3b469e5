; Zig: functions (methods inside a container), `const X = struct/enum/union/opaque {...}`
; (struct, enum, struct, struct), error sets (enums), `test "name"` (a function named by its
; string), top-level `const` bound to a literal (constants). Imports and aliases
; (`const std = @import("std")`, `const A = std.mem.Allocator`) are not symbols.
(function_declaration name: (identifier) @name) @definition.function
(variable_declaration (identifier) @name [(struct_declaration) (opaque_declaration)]) @definition.struct
(variable_declaration (identifier) @name (enum_declaration)) @definition.enum
(variable_declaration (identifier) @name (union_declaration)) @definition.struct
(variable_declaration (identifier) @name (error_set_declaration)) @definition.enum
(test_declaration [(string (string_content) @name) (identifier) @name]) @definition.function
(source_file
  (variable_declaration "const" (identifier) @name [(integer) (float) (string) (multiline_string) (character)]) @definition.constant)

; relations
(builtin_function
  (builtin_identifier) @_builtin
  (arguments . (string (string_content) @import))
  (#eq? @_builtin "@import"))
(call_expression function: [(identifier) @call (field_expression member: (identifier) @call)])

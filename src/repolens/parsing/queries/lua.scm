; Lua: `function f()` and `local function f()` (functions), `function M.f()`, `function M:f()`
; and `M.f = function() end` (methods of the table M, so `M.f`; `function a.b.f()` is `a.b.f`),
; `local f = function() end` and `f = function() end` (functions).
(function_declaration name: (identifier) @name) @definition.function
; class libraries (Penlight, middleclass, 30log): `local Stack = class(Base)`, `Stack = class()`,
; `class.Queue(Stack)` define classes whose methods are then `function Stack:push()`
(variable_declaration
  (assignment_statement
    (variable_list . name: (identifier) @name)
    (expression_list . value: (function_call name: (identifier) @_class)))
  (#eq? @_class "class")) @definition.class
(assignment_statement
  (variable_list . name: (identifier) @name)
  (expression_list . value: (function_call name: (identifier) @_class))
  (#eq? @_class "class")) @definition.class
(function_call
  name: (dot_index_expression table: (identifier) @_class field: (identifier) @name)
  (#eq? @_class "class")) @definition.class
; `Date.Format = class()`: a class kept in a table field
(assignment_statement
  (variable_list . name: (dot_index_expression table: (identifier) @receiver field: (identifier) @name))
  (expression_list . value: (function_call name: (identifier) @_class))
  (#eq? @_class "class")) @definition.class
; Penlight's `class(Base, nil, MultiMap)`: the third argument, an existing table, becomes the class
(function_call
  name: (identifier) @_class
  arguments: (arguments (_) . (_) . (identifier) @name .)
  (#eq? @_class "class")) @definition.class
(function_declaration
  name: [(dot_index_expression table: (_) @receiver field: (identifier) @name)
         (method_index_expression table: (_) @receiver method: (identifier) @name)]) @definition.method
(variable_declaration
  (assignment_statement
    (variable_list . name: (identifier) @name)
    (expression_list . value: (function_definition)))) @definition.function
(chunk
  (assignment_statement
    (variable_list . name: (identifier) @name)
    (expression_list . value: (function_definition))) @definition.function)
(block
  (assignment_statement
    (variable_list . name: (identifier) @name)
    (expression_list . value: (function_definition))) @definition.function)
(assignment_statement
  (variable_list . name: (dot_index_expression table: (_) @receiver field: (identifier) @name))
  (expression_list . value: (function_definition))) @definition.method

; relations
(function_call
  name: (identifier) @_require
  arguments: (arguments . (string content: (string_content) @import))
  (#eq? @_require "require"))
(function_call
  name: [(identifier) @call
         (dot_index_expression field: (identifier) @call)
         (method_index_expression method: (identifier) @call)]
  (#not-eq? @call "require"))

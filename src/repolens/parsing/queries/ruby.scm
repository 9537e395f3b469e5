; Ruby: classes, modules, methods (`def` is a function at the top level and a method inside
; a class or module; `def self.x` is a method), constants. `class << self` is not a symbol:
; its methods belong to the enclosing class. `class A::B` is named `B`.
(class name: [(constant) @name (scope_resolution name: (constant) @name)]) @definition.class
(module name: [(constant) @name (scope_resolution name: (constant) @name)]) @definition.module
(method name: (_) @name) @definition.function
(singleton_method name: (_) @name) @definition.method
(assignment left: (constant) @name) @definition.constant

; relations
(call
  method: (identifier) @_req
  arguments: (argument_list . (string (string_content) @import))
  (#any-of? @_req "require" "require_relative" "load"))
(call
  method: (identifier) @_mixin
  arguments: (argument_list [(constant) @inherit (scope_resolution) @inherit])
  (#any-of? @_mixin "include" "extend" "prepend"))
(call
  method: (identifier) @call
  (#not-match? @call "^(require|require_relative|load|include|extend|prepend|attr_reader|attr_writer|attr_accessor|private|protected|public|module_function|raise)$"))
(superclass [(constant) @inherit (scope_resolution) @inherit])
(constant) @reference

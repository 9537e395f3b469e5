; Ruby: classes, modules, methods (`def` is a function at the top level and a method inside
; a class or module; `def self.x` is a method), constants. `class << self` is not a symbol:
; its methods belong to the enclosing class. `class A::B` is named `B`.
(class name: (constant) @name) @definition.class
(module name: (constant) @name) @definition.module
; `class Billing::Refund` is Billing.Refund (the scope is its parent, as a receiver is)
(class name: (scope_resolution scope: (_) @receiver name: (constant) @name)) @definition.class
(module name: (scope_resolution scope: (_) @receiver name: (constant) @name)) @definition.module
; `Point = Struct.new(:x, :y) do ... end`, `Error = Class.new(StandardError)`, `Data.define`: classes
(assignment
  left: (constant) @name
  right: (call receiver: (constant) @_maker method: (identifier) @_new)
  (#any-of? @_maker "Struct" "Class" "Data")
  (#any-of? @_new "new" "define")) @definition.class
; `define_method(:name)` / `define_method("name")` with a literal name (an interpolated one is unknowable)
(call
  method: (identifier) @_define
  arguments: (argument_list . [(simple_symbol) @name (string . (string_content) @name .)])
  (#eq? @_define "define_method")) @definition.function
(method name: (_) @name) @definition.function
(singleton_method name: (_) @name) @definition.method
((assignment left: (constant) @name) @definition.constant
  (#not-match? @definition.constant "^[A-Z][A-Za-z0-9_]*\\s*=\\s*(Struct|Class|Data)\\.(new|define)"))

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

; Elixir: defmodule (module, named by its alias: `MyApp.Worker`), defprotocol (interface),
; def/defp/defmacro/defmacrop/defguard/defguardp/defdelegate (functions; inside a module they
; read as methods). Each clause of a multi-clause function is its own symbol, like overloads.
; `defimpl Proto, for: T` is a scope named by the protocol. Docs come from `@moduledoc` and
; from `@doc` before a def (also across one or two attributes such as `@impl`/`@spec`).
(call
  target: (identifier) @_kw
  (arguments . (alias) @name)
  (#eq? @_kw "defmodule")) @definition.module
(call
  target: (identifier) @_kw
  (arguments . (alias) @name)
  (do_block . (unary_operator operand: (call target: (identifier) @_md (arguments . (string) @doc))))
  (#eq? @_kw "defmodule")
  (#eq? @_md "moduledoc")) @definition.module
(call
  target: (identifier) @_kw
  (arguments . (alias) @name)
  (#eq? @_kw "defprotocol")) @definition.interface
(call
  target: (identifier) @_kw
  (arguments . (alias) @name)
  (do_block . (unary_operator operand: (call target: (identifier) @_md (arguments . (string) @doc))))
  (#eq? @_kw "defprotocol")
  (#eq? @_md "moduledoc")) @definition.interface
(call
  target: (identifier) @_kw
  (arguments . (alias) @scope.name)
  (#eq? @_kw "defimpl")) @scope

(call
  target: (identifier) @_kw
  (arguments . [(identifier) @name
                (call target: (identifier) @name)
                (binary_operator left: [(identifier) @name (call target: (identifier) @name)] operator: "when")])
  (#any-of? @_kw "def" "defp" "defmacro" "defmacrop" "defguard" "defguardp" "defdelegate")) @definition.function
((unary_operator operand: (call target: (identifier) @_doc (arguments . (string) @doc)))
  .
  (call
    target: (identifier) @_kw
    (arguments . [(identifier) @name
                  (call target: (identifier) @name)
                  (binary_operator left: [(identifier) @name (call target: (identifier) @name)] operator: "when")])) @definition.function
  (#eq? @_doc "doc")
  (#any-of? @_kw "def" "defp" "defmacro" "defmacrop" "defguard" "defguardp" "defdelegate"))
((unary_operator operand: (call target: (identifier) @_doc (arguments . (string) @doc)))
  .
  (unary_operator)
  .
  (call
    target: (identifier) @_kw
    (arguments . [(identifier) @name
                  (call target: (identifier) @name)
                  (binary_operator left: [(identifier) @name (call target: (identifier) @name)] operator: "when")])) @definition.function
  (#eq? @_doc "doc")
  (#any-of? @_kw "def" "defp" "defmacro" "defmacrop" "defguard" "defguardp" "defdelegate"))
((unary_operator operand: (call target: (identifier) @_doc (arguments . (string) @doc)))
  .
  (unary_operator)
  .
  (unary_operator)
  .
  (call
    target: (identifier) @_kw
    (arguments . [(identifier) @name
                  (call target: (identifier) @name)
                  (binary_operator left: [(identifier) @name (call target: (identifier) @name)] operator: "when")])) @definition.function
  (#eq? @_doc "doc")
  (#any-of? @_kw "def" "defp" "defmacro" "defmacrop" "defguard" "defguardp" "defdelegate"))

; relations
(call
  target: (identifier) @_kw
  (arguments . [(alias) @import (dot left: (alias) @import)])
  (#any-of? @_kw "alias" "import" "require" "use"))
; remote calls `Mod.fun(...)`, `var.fun(...)` (without arguments, `var.field` is a field access)
(call target: (dot left: (alias) right: (identifier) @call))
(call target: (dot left: (identifier) right: (identifier) @call) (arguments))
; local calls, listed by position: a def's head and an `@attr value` are calls too, and are not
; relations
(do_block
  (call target: (identifier) @call)
  (#not-match? @call "^(def|defp|defmacro|defmacrop|defguard|defguardp|defdelegate|defmodule|defprotocol|defimpl|defstruct|defexception|alias|import|require|use|quote|unquote|if|unless|case|cond|with|for|fn|raise|try|receive)$"))
(body
  (call target: (identifier) @call)
  (#not-match? @call "^(def|defp|defmacro|defmacrop|defguard|defguardp|defdelegate|defmodule|defprotocol|defimpl|defstruct|defexception|alias|import|require|use|quote|unquote|if|unless|case|cond|with|for|fn|raise|try|receive)$"))
(tuple
  (call target: (identifier) @call)
  (#not-match? @call "^(def|defp|defmacro|defmacrop|defguard|defguardp|defdelegate|defmodule|defprotocol|defimpl|defstruct|defexception|alias|import|require|use|quote|unquote|if|unless|case|cond|with|for|fn|raise|try|receive)$"))
(list
  (call target: (identifier) @call)
  (#not-match? @call "^(def|defp|defmacro|defmacrop|defguard|defguardp|defdelegate|defmodule|defprotocol|defimpl|defstruct|defexception|alias|import|require|use|quote|unquote|if|unless|case|cond|with|for|fn|raise|try|receive)$"))
(interpolation
  (call target: (identifier) @call)
  (#not-match? @call "^(def|defp|defmacro|defmacrop|defguard|defguardp|defdelegate|defmodule|defprotocol|defimpl|defstruct|defexception|alias|import|require|use|quote|unquote|if|unless|case|cond|with|for|fn|raise|try|receive)$"))
(map_content
  (call target: (identifier) @call)
  (#not-match? @call "^(def|defp|defmacro|defmacrop|defguard|defguardp|defdelegate|defmodule|defprotocol|defimpl|defstruct|defexception|alias|import|require|use|quote|unquote|if|unless|case|cond|with|for|fn|raise|try|receive)$"))
(binary_operator
  operator: ["|>" "=" "<-" "<>" "++" "--" "+" "-" "*" "/" "==" "!=" "===" "<" ">" "<=" ">=" "&&" "||" "and" "or" "in"]
  right: (call target: (identifier) @call)
  (#not-match? @call "^(quote|unquote|if|unless|case|cond|with|for|fn|raise|try|receive)$"))
(binary_operator
  left: (call target: (identifier) @call)
  operator: "|>"
  (#not-match? @call "^(quote|unquote)$"))
(pair value: (call target: (identifier) @call)
  (#not-match? @call "^(quote|unquote|if|unless|case|cond|with|for|fn|raise|try|receive)$"))
(call
  target: [(dot) (identifier) @_outer]
  (arguments (call target: (identifier) @call))
  (#not-match? @_outer "^(def|defp|defmacro|defmacrop|defguard|defguardp|defdelegate|defmodule|defprotocol|defimpl)$"))
(alias) @reference

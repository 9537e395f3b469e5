; Bash (and sh/zsh): function definitions, both `name() {}` and `function name {}` (a function
; defined inside another one is nested in it); top-level `readonly NAME=...` (constants).
(function_definition name: (word) @name) @definition.function
(program
  (declaration_command
    "readonly"
    (variable_assignment name: (variable_name) @name)) @definition.constant)
; `declare -r NAME=...` / `typeset -r` (flags may be grouped: `-rx`)
(program
  (declaration_command
    ["declare" "typeset"]
    (word) @_flags
    (variable_assignment name: (variable_name) @name)) @definition.constant
  (#match? @_flags "^-[a-zA-Z]*r"))

; relations: `source file` / `. file` import it; every other command is a call
(command
  name: (command_name (word) @_source)
  argument: [(word) (string) (raw_string) (concatenation)] @import
  (#any-of? @_source "source" "."))
(command
  name: (command_name (word) @call)
  (#not-match? @call "^(source|\\.)$"))

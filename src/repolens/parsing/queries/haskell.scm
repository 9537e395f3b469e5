; Haskell: top-level functions (one symbol per name: the first equation, so a function with
; several equations spans only its first one; its type signature is not part of the span, but
; the doc comment before the signature is its doc), value bindings (functions), data/newtype/type
; synonyms/type families (types), type classes (interfaces) with their method signatures
; (methods). Instances, local `where` bindings and equations after the first are not symbols.
(declarations . (function name: (variable) @name) @definition.function)
(declarations
  (function name: (variable) @_previous)
  .
  (function name: (variable) @name) @definition.function
  (#not-eq? @_previous @name))
; (an alternation before the anchor does not match: one pattern per preceding node type)
(declarations (signature) . (function name: (variable) @name) @definition.function)
(declarations (bind) . (function name: (variable) @name) @definition.function)
(declarations (data_type) . (function name: (variable) @name) @definition.function)
(declarations (newtype) . (function name: (variable) @name) @definition.function)
(declarations (type_synonym) . (function name: (variable) @name) @definition.function)
(declarations (type_family) . (function name: (variable) @name) @definition.function)
(declarations (type_instance) . (function name: (variable) @name) @definition.function)
(declarations (data_family) . (function name: (variable) @name) @definition.function)
(declarations (data_instance) . (function name: (variable) @name) @definition.function)
(declarations (class) . (function name: (variable) @name) @definition.function)
(declarations (instance) . (function name: (variable) @name) @definition.function)
(declarations (deriving_instance) . (function name: (variable) @name) @definition.function)
(declarations (foreign_import) . (function name: (variable) @name) @definition.function)
(declarations (foreign_export) . (function name: (variable) @name) @definition.function)
(declarations (fixity) . (function name: (variable) @name) @definition.function)
(declarations (top_splice) . (function name: (variable) @name) @definition.function)
(declarations (pattern_synonym) . (function name: (variable) @name) @definition.function)
(declarations (kind_signature) . (function name: (variable) @name) @definition.function)
(declarations (role_annotation) . (function name: (variable) @name) @definition.function)
(declarations (comment) . (function name: (variable) @name) @definition.function)
(declarations (haddock) . (function name: (variable) @name) @definition.function)
(declarations (pragma) . (function name: (variable) @name) @definition.function)
(declarations (bind name: (variable) @name) @definition.function)
; the doc comment of a function stands before its type signature
(declarations
  (haddock) @doc
  .
  (signature name: (variable) @_signature)
  .
  [(function name: (variable) @name) (bind name: (variable) @name)] @definition.function
  (#eq? @_signature @name))
; operators: `(<+>) :: ...` then `a <+> b = ...` (the equation after the signature, or the first one)
(declarations (signature) . (function (infix operator: (operator) @name)) @definition.function)
(declarations . (function (infix operator: (operator) @name)) @definition.function)
(declarations (data_type name: (name) @name) @definition.type)
(declarations (newtype name: (name) @name) @definition.type)
(declarations (type_synonym name: (name) @name) @definition.type)
(declarations (type_family name: (name) @name) @definition.type)
(declarations (class name: (name) @name) @definition.interface)
(class_declarations (signature name: (variable) @name) @definition.method)

; relations
(import module: (module) @import)
(apply function: [(variable) @call (qualified id: (variable) @call)])
(class context: (context [(name) @inherit (apply constructor: (name) @inherit)]))
(name) @reference

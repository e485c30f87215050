// Checks what the engine really sends against the protocol's TypeScript types (messages.ts), in
// node with the TypeScript compiler's checker. The engine's results are Rust structs serialized by
// serde-wasm-bindgen; their hand-written interfaces here can drift from them (a renamed field, a
// camelCase/snake_case slip, a None that arrives as undefined). The e2e test records the shape of
// every result that crosses the worker boundary and hands them to `checkResults`.

import ts from 'typescript';

/** The shape of a value as received by the page (structured clone of the worker's message). */
export type Shape =
  | { kind: 'null' | 'undefined' | 'number' | 'boolean' | 'typedarray' }
  | { kind: 'string'; value: string }
  | { kind: 'array'; items: Shape[] }
  | { kind: 'object'; fields: Record<string, Shape> };

export type ResultShapes = Record<string, Shape[]>;

const has = (type: ts.Type, flags: ts.TypeFlags) => (type.flags & flags) !== 0;

class ShapeChecker {
  constructor(private readonly checker: ts.TypeChecker) {}

  /** What does not fit: one line per mismatch, naming the path. */
  check(shape: Shape, type: ts.Type, path: string): string[] {
    if (has(type, ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return [];
    if (type.isUnion()) return this.checkUnion(shape, type, path);
    const name = this.checker.typeToString(type);
    const wrong = [`${path}: the engine sent ${describe(shape)}, the type says ${name}`];
    switch (shape.kind) {
      case 'null':
        return has(type, ts.TypeFlags.Null) ? [] : wrong;
      case 'undefined':
        return has(type, ts.TypeFlags.Undefined | ts.TypeFlags.Void) ? [] : wrong;
      case 'number':
        return has(type, ts.TypeFlags.NumberLike) ? [] : wrong;
      case 'boolean':
        return has(type, ts.TypeFlags.BooleanLike) ? [] : wrong;
      case 'string':
        if (type.isStringLiteral()) return type.value === shape.value ? [] : wrong;
        return has(type, ts.TypeFlags.String) ? [] : wrong;
      case 'typedarray':
        return /^(Float32|Float64|Uint8|Uint32|Int32)Array/.test(name) ? [] : wrong;
      case 'array': {
        if (this.checker.isTupleType(type)) {
          const items = this.checker.getTypeArguments(type as ts.TypeReference);
          if (shape.items.length > items.length) return wrong;
          return shape.items.flatMap((s, i) => this.check(s, items[i], `${path}[${i}]`));
        }
        if (!this.checker.isArrayType(type)) return wrong;
        const item = this.checker.getTypeArguments(type as ts.TypeReference)[0];
        return shape.items.flatMap((s, i) => this.check(s, item, `${path}[${i}]`));
      }
      case 'object':
        if (!has(type, ts.TypeFlags.Object) || this.checker.isArrayLikeType(type)) return wrong;
        return this.checkObject(shape.fields, type, path);
    }
  }

  private checkUnion(shape: Shape, type: ts.UnionType, path: string): string[] {
    const here = (p: string) => p.startsWith(`${path}: `);
    let closest: string[] | null = null;
    for (const member of type.types) {
      const problems = this.check(shape, member, path);
      if (problems.length === 0) return [];
      // A member of the value's kind (its problems lie deeper) explains the mismatch best.
      if (!problems.every(here) && (closest === null || problems.length < closest.length)) closest = problems;
    }
    const name = this.checker.typeToString(type, undefined, ts.TypeFormatFlags.InTypeAlias);
    return closest ?? [`${path}: the engine sent ${describe(shape)}, the type says ${name}`];
  }

  private checkObject(fields: Record<string, Shape>, type: ts.Type, path: string): string[] {
    const problems: string[] = [];
    const index = type.getStringIndexType();
    for (const [key, value] of Object.entries(fields)) {
      const prop = type.getProperty(key);
      if (!prop) {
        if (index) problems.push(...this.check(value, index, `${path}.${key}`));
        else problems.push(`${path}.${key}: the engine sends it, the type has no such field`);
        continue;
      }
      const optional = (prop.flags & ts.SymbolFlags.Optional) !== 0;
      if (value.kind === 'undefined' && optional) continue;
      problems.push(...this.check(value, this.checker.getTypeOfSymbol(prop), `${path}.${key}`));
    }
    for (const prop of type.getProperties()) {
      const optional = (prop.flags & ts.SymbolFlags.Optional) !== 0;
      if (!optional && !(prop.name in fields))
        problems.push(`${path}.${prop.name}: the type requires it, the engine did not send it`);
    }
    return problems;
  }
}

function describe(shape: Shape): string {
  if (shape.kind === 'string') return `the string ${JSON.stringify(shape.value)}`;
  return shape.kind === 'object' ? 'an object' : shape.kind === 'array' ? 'an array' : `a ${shape.kind}`;
}

/** Compiling messages.ts (and what it imports) takes seconds: once per file. */
const programs = new Map<string, ts.Program>();

function compile(path: string): ts.Program {
  return ts.createProgram([path], {
    strict: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    allowImportingTsExtensions: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  });
}

/**
 * Checks each recorded result against `ResultOf<method>` of messages.ts (`messagesPath`): every
 * field the engine sends must be declared with a type that admits the value, and every field
 * declared required must be sent. Returns the mismatches (empty: they agree).
 */
export function checkResults(messagesPath: string, results: ResultShapes): string[] {
  const program = programs.get(messagesPath) ?? compile(messagesPath);
  programs.set(messagesPath, program);
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(messagesPath);
  if (!source) throw new Error(`cannot read ${messagesPath}`);
  const api = source.statements.find(
    (s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === 'EngineApi',
  );
  if (!api) throw new Error(`${messagesPath} has no EngineApi interface`);
  const apiType = checker.getTypeAtLocation(api.name);
  const shapes = new ShapeChecker(checker);
  const problems: string[] = [];
  for (const [method, samples] of Object.entries(results)) {
    const entry = apiType.getProperty(method);
    const result = entry && checker.getTypeOfSymbol(entry).getProperty('result');
    if (!result) {
      problems.push(`${method}: the engine answered it, EngineApi has no such method`);
      continue;
    }
    const type = checker.getTypeOfSymbol(result);
    for (const sample of samples) problems.push(...shapes.check(sample, type, method));
  }
  return [...new Set(problems)];
}

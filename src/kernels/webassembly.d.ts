/**
 * The slice of the WebAssembly JS API the kernels use. TypeScript's ES2022 lib and @types/node 20 do not
 * declare it (it lives in lib.dom); these match the spec's signatures.
 */
declare namespace WebAssembly {
  class Module {
    constructor(bytes: BufferSource);
    static exports(m: Module): { name: string; kind: string }[];
    static imports(m: Module): { module: string; name: string; kind: string }[];
  }
  class Instance {
    constructor(module: Module, imports?: Record<string, Record<string, unknown>>);
    readonly exports: Record<string, unknown>;
  }
  interface MemoryDescriptor {
    initial: number;
    maximum?: number;
    shared?: boolean;
  }
  class Memory {
    constructor(d: MemoryDescriptor);
    readonly buffer: ArrayBuffer | SharedArrayBuffer;
    grow(deltaPages: number): number;
  }
  function validate(bytes: BufferSource): boolean;
}
type BufferSource = ArrayBufferView | ArrayBuffer;

export interface AbiDecl { name: string; value: number; comment: string }
export interface AbiSlot { name: string; offset: number; type: 'ptr' | 'u32' | 'i32' | 'f32'; field: string }
export const ABI_TS: string;
export const SLOT_GROUPS: readonly ['MM', 'XAI8', 'ATTN'];
export function abiDeclarations(text?: string): AbiDecl[];
export function abiSlots(decls: readonly AbiDecl[], group: string): AbiSlot[];
export function abiHeader(decls?: readonly AbiDecl[]): string;
export function writeAbiHeader(dir: string): string;

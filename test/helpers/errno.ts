/** errno numbers (as the syscall shim returns them, negative) to names such as 'ENOENT'. */
import * as os from 'node:os'

const NAMES = new Map<number, string>()
for (const [name, num] of Object.entries(os.constants.errno)) if (!NAMES.has(num)) NAMES.set(num, name)

export function errnoName(n: number): string {
  return NAMES.get(Math.abs(n)) ?? `errno${Math.abs(n)}`
}

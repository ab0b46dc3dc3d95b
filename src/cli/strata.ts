/**
 * `strata`: the helper CLI for the layer store (layers, images, containers, volumes, gc). A thin commander
 * shell: each subcommand lives in ./commands and calls src/layers/store; this file owns the one
 * place where errors become exit codes and one-line messages.
 *   0 ok · 1 other (bad input, verify mismatch) · 2 usage · 3 not found · 4 conflict · 5 I/O
 */
import { Command, CommanderError } from 'commander'
import { codeOf } from '../sys/errors'
import { containerCommand } from './commands/container'
import { gcCommand } from './commands/gc'
import { statsCommand } from './commands/stats'
import { imageCommand } from './commands/image'
import { layerCommand } from './commands/layer'
import { volumeCommand } from './commands/volume'

export function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2
  const code = codeOf(err)
  if (code === 'ENOENT') return 3
  if (code === 'EEXIST' || code === 'EBUSY' || code === 'ENOTEMPTY') return 4
  if (code === 'EINVAL' || code === 'EFBIG' || code === 'EILSEQ' || code === 'ERANGE') return 1
  if ((err as { code?: unknown } | null)?.code === undefined && !(err instanceof Error && 'errno' in err)) return 1
  return 5
}

export function buildProgram(): Command {
  const program = new Command('strata')
    .description('strata layer store: layers, images, containers and volumes for stratafs')
    .option('--root <dir>', 'store root (default: $STRATA_ROOT or /var/lib/strata)')
    .showHelpAfterError()
    .exitOverride()
  program.addCommand(layerCommand())
  program.addCommand(imageCommand())
  program.addCommand(containerCommand())
  program.addCommand(volumeCommand())
  program.addCommand(gcCommand())
  program.addCommand(statsCommand())
  // every subcommand throws instead of exiting, so main() maps errors in one place
  const walk = (c: Command): void => {
    c.exitOverride()
    c.showHelpAfterError()
    c.commands.forEach(walk)
  }
  walk(program)
  return program
}

let quietOnEpipe = false

export async function main(argv: string[]): Promise<number> {
  if (!quietOnEpipe) {
    // `strata ... | head`: the reader went away; stop quietly, as other command-line tools do
    quietOnEpipe = true
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err
      process.exit(0)
    })
  }
  const program = buildProgram()
  try {
    await program.parseAsync(argv)
    return 0
  } catch (err) {
    if (err instanceof CommanderError) return exitCodeFor(err)
    const msg = err instanceof Error ? err.message : String(err)
    process.stderr.write(`strata: ${msg}\n`)
    if (process.env.STRATA_LOG === 'debug' && err instanceof Error) process.stderr.write(`${err.stack}\n`)
    return exitCodeFor(err)
  }
}

if (require.main === module) {
  main(process.argv).then((code) => {
    process.exitCode = code
  }, (err: unknown) => {
    process.stderr.write(`strata: ${String(err)}\n`)
    process.exitCode = 1
  })
}

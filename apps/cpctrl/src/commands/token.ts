import type { Bus } from '@computepods/bus';
import { ApiTokenRecord, buckets, newApiToken, Project, UserName } from '@computepods/protocol';
import type { Command } from 'commander';
import { CliError, printJson, printTable } from '../output.js';
import { withBus } from '../with-bus.js';

const tokensOf = (bus: Bus, project: string) =>
  bus.kv(buckets.tokens(project), ApiTokenRecord, { history: 5 });

/** What may be shown of a record: everything but the hash. */
const shown = ({ sha256: _hash, ...rest }: ApiTokenRecord) => rest;

/**
 * `cpctrl token …`: the project's REST API tokens, written straight into its tokens bucket
 * (`cp_<p>_tokens`), which MajorDomo watches. Only the SHA-256 of a secret is stored; the
 * token itself is printed once, by create.
 */
export function tokenCommand(program: Command): void {
  const token = program
    .command('token')
    .alias('tokens')
    .description("REST API tokens of the project's users (create, list, revoke)");
  token
    .command('create')
    .requiredOption(
      '--user <name>',
      "the user the token acts as (its role is the user's role in the project)",
    )
    .option('--description <text>', 'what the token is for, e.g. "laptop" or "CI"', '')
    .description('make a token for a user; it is printed once and cannot be shown again')
    .action(async (opts: { user: string; description: string }, cmd: Command) =>
      withBus(cmd, async (bus, ctx) => {
        const user = UserName.safeParse(opts.user);
        if (!user.success)
          throw new CliError(
            'CP_BAD_USER',
            `--user ${JSON.stringify(opts.user)}: ${user.error.issues[0]?.message}`,
          );
        if (opts.description.length > 200)
          throw new CliError('CP_BAD_DESCRIPTION', '--description: at most 200 characters');
        const { record, token: secret } = newApiToken(user.data, opts.description);
        await (await tokensOf(bus, ctx.project)).create(record.id, record);
        const project = await bus.kv(buckets.config(ctx.project), Project);
        const members = (await project.get('project'))?.value.members ?? [];
        const role = members.find((m) => m.user === user.data)?.role;
        if (!role)
          process.stderr.write(
            `cpctrl: note: ${user.data} is not a member of project ${ctx.project} yet; MajorDomo refuses the token (403) until a project admin adds them to "members" of the project record\n`,
          );
        if (ctx.json) return printJson({ id: record.id, user: record.user, token: secret });
        process.stdout.write(
          `${secret}\n` +
            `(token ${record.id} for ${record.user}${role ? `, ${role}` : ''}; shown once: only its hash is kept. Send it as "Authorization: Bearer TOKEN"; revoke it with: cpctrl token revoke ${record.id})\n`,
        );
      }),
    );
  token
    .command('list')
    .description('list tokens (ids, users, dates; never secrets or hashes)')
    .action(async (_o, cmd: Command) =>
      withBus(cmd, async (bus, ctx) => {
        const all = [...(await (await tokensOf(bus, ctx.project)).entries()).values()]
          .map((v) => shown(v.value))
          .sort((a, b) => a.created.localeCompare(b.created));
        if (ctx.json) return printJson(all);
        printTable(
          all.map((t) => [t.id, t.user, t.created, t.revoked ?? '-', t.description || '-']),
          ['ID', 'USER', 'CREATED', 'REVOKED', 'DESCRIPTION'],
        );
      }),
    );
  token
    .command('revoke')
    .argument('<id>', 'the token id (see cpctrl token list)')
    .description(
      'revoke a token: MajorDomo refuses it at once; the record stays for the audit trail',
    )
    .action(async (id: string, _o, cmd: Command) =>
      withBus(cmd, async (bus, ctx) => {
        const tokens = await tokensOf(bus, ctx.project);
        for (;;) {
          const cur = await tokens.get(id);
          if (!cur)
            throw new CliError('CP_NOT_FOUND', `no token ${id}; \`cpctrl token list\` lists them`);
          const revoked = cur.value.revoked ?? new Date().toISOString();
          // Compare-and-set: a concurrent change is read again rather than overwritten.
          if (!cur.value.revoked) {
            const ok = await tokens
              .update(id, { ...cur.value, revoked }, cur.revision)
              .then(() => true)
              .catch(() => false);
            if (!ok) continue;
          }
          if (ctx.json) return printJson({ id, user: cur.value.user, revoked });
          process.stdout.write(
            `token ${id} of ${cur.value.user} ${cur.value.revoked ? 'was already' : 'is'} revoked (${revoked})\n`,
          );
          return;
        }
      }),
    );
}

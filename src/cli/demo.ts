// `vellum demo`: the whole appliance on this machine with real parts: a private
// slapd seeded with demo people, a SoftHSM2 token, and study DEMO-001 with its
// role bindings, the template's access rules (docs/access.md) and the
// template's folders. State lives under ./var/demo and is reused across
// runs; --fresh starts over. Ctrl-C stops everything it started.

import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { loadConfigFile, type ConfigFile } from '../config/index.ts';
import { isStudyRole, type StudyRole } from '../kernel/index.ts';
import { DAV_MOUNT, startAppliance, type Appliance } from '../server/index.ts';
import type { TestEnv } from '../../test/env/index.ts';
import type { Command } from './command.ts';
import { consoleLogger, untilSignal } from './process.ts';

export const DEMO_STUDY = 'DEMO-001';
export const DEMO_FOLDERS = ['Regulatory', 'Source Documents', 'Raw Data', 'Query Responses'];
/** Where the demo study requires a reason for deleting, overwriting or moving out. */
export const DEMO_REASON_FOLDERS = ['/Regulatory'];

export const demoCommand: Command = {
  name: 'demo',
  summary: 'Start a demo appliance with a private LDAP directory, a SoftHSM2 token and study DEMO-001.',
  flags: {
    fresh: { type: 'boolean', help: 'Delete the demo state and start over.' },
    dir: { type: 'string', help: 'Where the demo keeps its state (default ./var/demo).', placeholder: 'DIR' },
    host: { type: 'string', help: 'Address for HTTPS (default 127.0.0.1; 0.0.0.0 to let other machines mount).', placeholder: 'ADDR' },
    'https-port': { type: 'number', help: 'HTTPS port (default 8443).', placeholder: 'PORT' },
    'http-port': { type: 'number', help: 'Plain-HTTP port on 127.0.0.1 (default 8080).', placeholder: 'PORT' },
  },
  async run(flags) {
    const dir = resolve(typeof flags.dir === 'string' ? flags.dir : join('var', 'demo'));
    if (flags.fresh) {
      console.log(`Removing ${dir}`);
      await rm(dir, { recursive: true, force: true });
    }
    await mkdir(dir, { recursive: true, mode: 0o700 });

    console.log('Starting the test directory (slapd) and HSM token (SoftHSM2)...');
    // The environment lives with the test suite; the demo is its other user.
    const { startTestEnv, PEOPLE, GROUPS } = await import('../../test/env/index.ts');
    const env = await startTestEnv({ dir: join(dir, 'env'), keep: true });
    let appliance: Appliance | undefined;
    try {
      const configFile = await writeDemoConfig(dir, env, {
        host: typeof flags.host === 'string' ? flags.host : '127.0.0.1',
        httpsPort: typeof flags['https-port'] === 'number' ? flags['https-port'] : 8443,
        httpPort: typeof flags['http-port'] === 'number' ? flags['http-port'] : 8080,
        administratorGroup: GROUPS['vellum-administrators'].dn,
      });
      appliance = await startAppliance(loadConfigFile(configFile), consoleLogger);

      const bindings = Object.values(GROUPS)
        .filter((group): group is typeof group & { role: StudyRole } => isStudyRole(group.role))
        .map((group) => ({ group: group.dn, role: group.role }));
      await seedStudy(appliance, bindings);

      const accounts = Object.fromEntries(Object.values(PEOPLE).map((person) => [person.login, person.password]));
      await writeFile(join(dir, 'accounts.json'), JSON.stringify(accounts, null, 2) + '\n', { mode: 0o600 });

      console.log('');
      console.log(`WebDAV: ${appliance.httpsUrl}${DAV_MOUNT}/`);
      if (appliance.httpUrl) console.log(`WebDAV (loopback, plain HTTP): ${appliance.httpUrl}${DAV_MOUNT}/`);
      console.log(`Web UI: ${appliance.httpsUrl}/`);
      console.log('');
      console.log('Demo accounts (also in ' + join(dir, 'accounts.json') + '):');
      for (const person of Object.values(PEOPLE)) console.log(`  ${person.login.padEnd(8)} ${person.password.padEnd(22)} ${person.role}`);
      console.log('');
      console.log(`Try: curl -k -u sam:${PEOPLE.sam.password} -T README.md ${appliance.httpsUrl}${DAV_MOUNT}/${DEMO_STUDY}/README.md`);
      console.log('Press Ctrl-C to stop.');
      await untilSignal();
      console.log('Stopping...');
    } finally {
      await appliance?.close();
      await env.close();
    }
    return 0;
  },
};

interface DemoPorts {
  readonly host: string;
  readonly httpsPort: number;
  readonly httpPort: number;
  readonly administratorGroup: string;
}

/** Writes the demo's configuration and secret files, the way an operator would. */
async function writeDemoConfig(
  dir: string,
  env: TestEnv,
  ports: DemoPorts,
): Promise<string> {
  const secrets = join(dir, 'secrets');
  await mkdir(secrets, { recursive: true, mode: 0o700 });
  await writeFile(join(secrets, 'ldap-bind-password'), env.ldap.servicePassword + '\n', { mode: 0o600 });
  await writeFile(join(secrets, 'hsm-pin'), env.hsm.pin + '\n', { mode: 0o600 });
  const config: ConfigFile = {
    dataDir: 'data',
    listen: { https: { host: ports.host, port: ports.httpsPort }, http: { host: '127.0.0.1', port: ports.httpPort } },
    ldap: {
      url: env.ldap.url,
      bindDn: env.ldap.serviceDn,
      bindPassword: { file: 'secrets/ldap-bind-password' },
      userBase: env.ldap.userBase,
      groupBase: env.ldap.groupBase,
      preset: 'openldap',
      displayNameAttribute: 'cn',
      // The demo's service account may write ou=groups: Administrators manage groups through the API.
      groupManagement: true,
    },
    hsm: { library: env.hsm.library, tokenLabel: env.hsm.tokenLabel, pin: { file: 'secrets/hsm-pin' } },
    access: { administratorGroups: [ports.administratorGroup] },
  };
  const file = join(dir, 'vellum.json');
  await writeFile(file, JSON.stringify(config, null, 2) + '\n');
  return file;
}

async function seedStudy(appliance: Appliance, bindings: { group: string; role: StudyRole }[]): Promise<void> {
  if (await appliance.vault.getStudy(DEMO_STUDY)) return;
  const session = appliance.systemSession('Demo set-up');
  // No accessRules: the study gets the template, whose folders are DEMO_FOLDERS.
  await session.createStudy({ id: DEMO_STUDY, title: 'Demo study', bindings, changeReasonFolders: DEMO_REASON_FOLDERS });
  for (const name of DEMO_FOLDERS) await session.makeFolder({ study: DEMO_STUDY, names: [name] });
  console.log(`Created study ${DEMO_STUDY} with folders: ${DEMO_FOLDERS.join(', ')} (who may do what where: docs/access.md)`);
  console.log(`Deleting, overwriting or moving out of ${DEMO_REASON_FOLDERS.join(', ')} needs a reason (header X-Change-Reason).`);
}

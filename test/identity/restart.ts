// Restarts a test appliance on the same data and directory with a changed
// configuration, for the end-to-end tests of what must survive a restart.

import { buildConfig, type ConfigFile } from '../../src/config/index.ts';
import { startAppliance } from '../../src/server/index.ts';
import { applianceConfig, type Running } from '../support/appliance.ts';

/** Stops the appliance of `running` and starts a new one; the result replaces `running`. */
export async function restartAppliance(running: Running, change: (config: ConfigFile) => ConfigFile): Promise<Running> {
  await running.stopAppliance();
  const file = change(applianceConfig(running.env, running.dataDir, { ldapTimeoutMs: 2000, secretEnv: { ldapBindPassword: 'TEST_LDAP_BIND_PASSWORD', hsmPin: 'TEST_HSM_PIN' } }));
  const config = buildConfig(file, {
    source: 'test config', baseDir: running.env.dir,
    env: { TEST_LDAP_BIND_PASSWORD: running.env.ldap.servicePassword, TEST_HSM_PIN: running.env.hsm.pin },
  });
  const appliance = await startAppliance(config, { info: (m) => running.logs.push(m), error: (m, e) => running.logs.push(`${m}: ${String(e)}`) });
  let stopped = false;
  return {
    ...running, appliance, https: appliance.httpsUrl, http: appliance.httpUrl!,
    async stopAppliance() {
      stopped = true;
      await appliance.close();
    },
    async close() {
      if (!stopped) await appliance.close();
      await running.env.close();
    },
  };
}

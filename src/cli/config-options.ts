import { type Command, Option } from 'commander';
import { type ConfigInput, type ConfigKey, type SettingSchema, describeDefault, settings } from '../coordinator/index.js';
import { parseInteger } from './options.js';

/**
 * Add a flag for every setting of the config schema that has one (`flag`), with its help,
 * environment variable and default taken from the schema. Returns the reader that turns the
 * parsed flags back into config input (validated by `resolveConfig`, which names the flag).
 */
export function addConfigOptions(command: Command): (flags: Record<string, unknown>) => ConfigInput {
  const byAttribute = new Map<string, ConfigKey>();
  for (const [key, setting] of Object.entries(settings) as Array<[ConfigKey, SettingSchema]>) {
    if (setting.flag === undefined) continue;
    const option = new Option(setting.flag, `${setting.description} (env ${setting.env}; default ${describeDefault(setting)})`);
    if (setting.type === 'integer') option.argParser(parseInteger(setting.minimum, setting.maximum));
    command.addOption(option);
    byAttribute.set(option.attributeName(), key);
  }
  return (flags) =>
    Object.fromEntries([...byAttribute].map(([attribute, key]) => [key, flags[attribute]]).filter(([, value]) => value !== undefined));
}

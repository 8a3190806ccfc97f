export {
  profiles,
  roles,
  profileNames,
  isProfileName,
  getProfile,
  DEFAULT_PROFILE,
  type ProfileName,
  type ProfileSpec,
  type RoleName,
  type RoleSpec,
  type Bundle,
  type TailSpec,
} from './profiles.js';
export {
  resolveGenerateOptions,
  SYNTHETIC_NETWORK,
  MAX_SYNTHETIC_HOSTS,
  MAX_SYNTHETIC_EPOCHS,
  type GenerateOptions,
  type ResolvedGenerateOptions,
} from './options.js';
export { syntheticIp, syntheticSubnet } from './address.js';
export {
  buildScopeModel,
  planRollout,
  planSubnet,
  openPortsAt,
  HostKind,
  SUBNET_SIZE,
  NEVER,
  type ScopeModel,
  type SubnetPlan,
  type RolloutPlan,
} from './scope-model.js';
export {
  generateObservations,
  generateRecording,
  scopeHeader,
  modelObservations,
  GENERATOR_VERSION,
  SYNTHETIC_PROBED,
} from './generate.js';
export { writeGeneratedScope, type GenerateProgress, type WrittenScope } from './write.js';
export { describeProfile, renderProfilesMarkdown, renderProfilesText, type ProfileParameter } from './describe.js';

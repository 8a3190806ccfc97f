export { RECORDING_FORMAT, RECORDING_VERSION, type RecordingHeader, type Observation, type LoadedRecording } from './types.js';
export { RecordingWriter, formatHeader, formatObservation } from './writer.js';
export { RecordingBuilder, recordingFromObservations, type RecordingBuilderOptions } from './builder.js';
export { validateHeader, validateObservation, parseProbed, MAX_EPOCH, type ValidObservation } from './validate.js';
export { observationAt, observations, openPortsAt } from './observations.js';

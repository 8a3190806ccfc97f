export { RECORDING_FORMAT, RECORDING_VERSION, type RecordingHeader, type Observation, type LoadedRecording } from './types.js';
export { RecordingWriter, formatHeader, formatObservation, writeRecording } from './writer.js';
export { loadRecording, forEachLine } from './reader.js';
export { RecordingBuilder, recordingFromObservations, type RecordingBuilderOptions } from './builder.js';
export { validateHeader, validateObservation, parseProbed, MAX_EPOCH, type ValidObservation } from './validate.js';
export { observationAt, observations, openPortsAt } from './observations.js';

export { RECORDING_FORMAT, RECORDING_VERSION, type RecordingHeader, type Observation, type LoadedRecording } from './types.js';
export { RecordingWriter, formatHeader, formatObservation, writeRecording } from './writer.js';
export { loadRecording, forEachLine, type LoadProgress, type LoadRecordingOptions } from './reader.js';
export { summarizeRecording, type RecordingSummary } from './summary.js';
export { RecordingBuilder, recordingFromObservations, type RecordingBuilderOptions } from './builder.js';
export { validateHeader, validateObservation, parseProbed, MAX_EPOCH, type ValidObservation } from './validate.js';
export { observationAt, observations, openPortsAt } from './observations.js';

// Copies the pipeline's gRPC service definition beside its compiled loader (dist/src/api/pipeline), which reads it at run time.
import fs from 'node:fs';
fs.mkdirSync('dist/src/api/pipeline', { recursive: true });
fs.copyFileSync('src/api/pipeline/stage.proto', 'dist/src/api/pipeline/stage.proto');

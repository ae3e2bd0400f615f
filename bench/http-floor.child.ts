/**
 * The HTTP floor of the ingest benchmark: a bare fastify server that parses
 * the JSON body and answers 200, nothing else. What any Node HTTP ingest on
 * this machine costs before it does any work; prints its address on stderr
 * as JSON, as `tandem serve` does.
 */
import Fastify from 'fastify';

const app = Fastify({ bodyLimit: 1024 * 1024 });
app.post('/v1/batch', async (request) => ({
  success: Array.isArray((request.body as { batch?: unknown }).batch),
}));
const address = await app.listen({ host: '127.0.0.1', port: 0 });
process.stderr.write(`${JSON.stringify({ address })}\n`);
process.once('SIGTERM', () => void app.close());

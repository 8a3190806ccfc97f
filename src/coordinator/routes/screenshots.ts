import type { FastifyReply } from 'fastify';
import type { RouteApp } from './types.js';
import { PortbanditError } from '../../core/index.js';
import { requireRole } from '../auth.js';
import { type Coordinator, normalizeIp } from '../coordinator.js';
import { errorResponseSchema } from '../../protocol/index.js';

const errors = {
  400: errorResponseSchema,
  401: errorResponseSchema,
  403: errorResponseSchema,
  404: errorResponseSchema,
  429: errorResponseSchema,
};

/** Path parameters of an image: the host, the visit and the port. */
export const screenshotParams = {
  type: 'object',
  required: ['ip', 'scanId', 'port'],
  properties: {
    ip: { type: 'string', maxLength: 64 },
    scanId: { type: 'string', maxLength: 64 },
    port: { type: 'integer', minimum: 1, maximum: 65535 },
  },
} as const;

/**
 * Send one stored screenshot as an image: its own content type (checked PNG/JPEG bytes), never
 * sniffed, sandboxed, cached privately. 404 when the host, the visit or the port has none (or the
 * budget dropped it). Shared by the API and the UI (which authenticates with its cookie).
 */
export function sendScreenshot(
  reply: FastifyReply,
  coordinator: Coordinator,
  params: { ip: string; scanId: string; port: number },
): FastifyReply {
  let ip: string;
  try {
    ip = normalizeIp(params.ip);
  } catch {
    throw new PortbanditError('PB_ERR_ADDRESS', `expected an IPv4 or IPv6 address, got ${JSON.stringify(params.ip)}`, { where: 'ip' });
  }
  const shot = coordinator.screenshots.existing()?.get(params.scanId, params.port);
  if (!shot || shot.ip !== ip)
    throw new PortbanditError('PB_ERR_NOT_FOUND', `no screenshot of ${ip} port ${params.port} in scan ${JSON.stringify(params.scanId)}`, {
      where: 'scanId',
    });
  return reply
    .status(200)
    .header('content-type', shot.mime)
    .header('x-content-type-options', 'nosniff')
    .header('content-security-policy', "default-src 'none'; sandbox")
    .header('cache-control', 'private, max-age=3600')
    .header(
      'content-disposition',
      `inline; filename="${ip.replace(/:/g, '_')}-${params.port}.${shot.mime === 'image/png' ? 'png' : 'jpg'}"`,
    )
    .send(shot.data);
}

/** Screenshots: one image (`/api/v1/hosts/:ip/screenshots/:scanId/:port`) and the newest-first list. */
export function registerScreenshotRoutes(app: RouteApp, coordinator: Coordinator): void {
  const preParsing = requireRole(coordinator, 'admin');
  const security = [{ bearer: [] }];

  app.get(
    '/api/v1/hosts/:ip/screenshots/:scanId/:port',
    {
      preParsing,
      schema: {
        tags: ['results'],
        summary: "A web screenshot of a host's port from one visit (image/png or image/jpeg; the scan's `screenshots` lists them).",
        security,
        params: screenshotParams,
        response: { ...errors },
      },
    },
    async (req, reply) => sendScreenshot(reply, coordinator, req.params),
  );

  app.get(
    '/api/v1/screenshots',
    {
      preParsing,
      schema: {
        tags: ['results'],
        summary: 'Stored web screenshots, newest first (metadata; each `url` is the image). `total` and `bytes` describe the whole store.',
        security,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
            offset: { type: 'integer', minimum: 0, maximum: 10_000_000, default: 0 },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              total: { type: 'integer' },
              bytes: { type: 'integer' },
              budgetBytes: { type: 'integer' },
              items: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    ip: { type: 'string' },
                    scanId: { type: 'string' },
                    port: { type: 'integer' },
                    scheme: { type: 'string' },
                    mime: { type: 'string' },
                    width: { type: 'integer' },
                    height: { type: 'integer' },
                    bytes: { type: 'integer' },
                    title: { type: 'string' },
                    storedAt: { type: 'integer' },
                    url: { type: 'string' },
                  },
                },
              },
            },
          },
          ...errors,
        },
      },
    },
    async (req) => {
      const store = coordinator.screenshots.existing();
      if (!store) return { total: 0, bytes: 0, budgetBytes: coordinator.screenshots.budget, items: [] };
      return {
        total: store.count(),
        bytes: store.totalBytes(),
        budgetBytes: store.budgetBytes,
        items: store
          .newest(req.query.limit, req.query.offset)
          .map((s) => ({ ...s, url: `/api/v1/hosts/${encodeURIComponent(s.ip)}/screenshots/${encodeURIComponent(s.scanId)}/${s.port}` })),
      };
    },
  );
}

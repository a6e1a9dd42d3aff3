import { Bus, createLogger, startService } from '@computepods/bus';
import { serveApi } from './api.js';
import { majorDomoConfig } from './config.js';
import { startHttp } from './http.js';
import { MajorDomo } from './majordomo.js';
import { apiToken } from './token.js';

const logger = createLogger('majordomo');
startService(logger, async () => {
  const cfg = majorDomoConfig();
  const bus = await Bus.connect({
    service: 'majordomo',
    project: cfg.project,
    logger: logger.child({ project: cfg.project }),
    description: 'ComputePods MajorDomo: dependency graph, artefacts, build planning',
  });
  const { md, stop } = await MajorDomo.start(bus, cfg);
  serveApi(bus, md);
  const { token, file } = apiToken(cfg.apiToken, cfg.stateDir);
  const http = await startHttp(bus, md, { host: cfg.httpHost, port: cfg.httpPort, token });
  const address = http.server.address();
  const port = typeof address === 'object' && address ? address.port : cfg.httpPort;
  const url = `http://${cfg.httpHost}:${port}`;
  bus.logger.info({ url, openapi: `${url}/openapi.json`, tokenFile: file }, 'HTTP API listening');
  // Ready once the NATS API's subscriptions are known to the server, not before: a request sent
  // on seeing this line must find a responder.
  await bus.nc.flush();
  bus.logger.info('majordomo ready');
  return async () => {
    await http.close();
    await stop();
  };
});

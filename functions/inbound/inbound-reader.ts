import type { InboundReader } from '#core/inbound-report.js';
import { bounceLogFacts, hasSenderSideFailure } from './bounce-log.js';
import { classifyInbound } from './classify-inbound.js';

/** The inbound reader the poller is wired with: the classifier, its log facts and its sender-side test. */
export const inboundReader: InboundReader = {
  classify: classifyInbound,
  logFacts: bounceLogFacts,
  blamesUs: hasSenderSideFailure,
};

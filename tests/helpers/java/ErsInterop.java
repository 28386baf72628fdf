// Bouncy Castle's RFC 4998 implementation (org.bouncycastle.tsp.ers) on the other side of
// dsig's evidence records. Driven by tests/integration/test_evidence_bouncycastle.py.
//
//   verify RECORD DATA AT_MILLIS      - BC checks a record for DATA: prints "OK <genTime>"
//   request OUT_TSQ DATA...           - a TimeStampReq over the hash tree of DATA...
//   records TSR OUT_PREFIX DATA...    - one record per DATA from the TSA's reply: OUT_PREFIX<i>.ers
import java.io.File;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;

import org.bouncycastle.asn1.DERNull;
import org.bouncycastle.asn1.nist.NISTObjectIdentifiers;
import org.bouncycastle.asn1.x509.AlgorithmIdentifier;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cms.SignerInformationVerifier;
import org.bouncycastle.cms.jcajce.JcaSimpleSignerInfoVerifierBuilder;
import org.bouncycastle.operator.DigestCalculator;
import org.bouncycastle.operator.DigestCalculatorProvider;
import org.bouncycastle.operator.jcajce.JcaDigestCalculatorProviderBuilder;
import org.bouncycastle.tsp.TimeStampRequest;
import org.bouncycastle.tsp.TimeStampRequestGenerator;
import org.bouncycastle.tsp.TimeStampResponse;
import org.bouncycastle.tsp.ers.ERSArchiveTimeStamp;
import org.bouncycastle.tsp.ers.ERSArchiveTimeStampGenerator;
import org.bouncycastle.tsp.ers.ERSEvidenceRecord;
import org.bouncycastle.tsp.ers.ERSEvidenceRecordGenerator;
import org.bouncycastle.tsp.ers.ERSFileData;

public class ErsInterop {
    static DigestCalculatorProvider provider() throws Exception {
        return new JcaDigestCalculatorProviderBuilder().build();
    }

    static ERSArchiveTimeStampGenerator generator(String[] args, int from) throws Exception {
        DigestCalculator sha256 =
            provider().get(new AlgorithmIdentifier(NISTObjectIdentifiers.id_sha256, DERNull.INSTANCE));
        ERSArchiveTimeStampGenerator gen = new ERSArchiveTimeStampGenerator(sha256);
        for (int i = from; i < args.length; i++) {
            gen.addData(new ERSFileData(new File(args[i])));
        }
        return gen;
    }

    static TimeStampRequestGenerator requests() {
        TimeStampRequestGenerator reqGen = new TimeStampRequestGenerator();
        reqGen.setCertReq(true);
        return reqGen;
    }

    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "verify": {
                ERSEvidenceRecord record =
                    new ERSEvidenceRecord(Files.readAllBytes(new File(args[1]).toPath()), provider());
                record.validatePresent(new ERSFileData(new File(args[2])), new Date(Long.parseLong(args[3])));
                X509CertificateHolder tsa = record.getSigningCertificate();
                SignerInformationVerifier verifier = new JcaSimpleSignerInfoVerifierBuilder().build(tsa);
                record.validate(verifier);
                System.out.println("OK " + record.toASN1Structure().getArchiveTimeStampSequence()
                    .getArchiveTimeStampChains().length);
                break;
            }
            case "request": {
                // The nonce is fixed so that "records" can rebuild the identical request.
                TimeStampRequest req = generator(args, 2).generateTimeStampRequest(
                    requests(), java.math.BigInteger.valueOf(4998));
                Files.write(new File(args[1]).toPath(), req.getEncoded());
                break;
            }
            case "records": {
                ERSArchiveTimeStampGenerator gen = generator(args, 3);
                gen.generateTimeStampRequest(requests(), java.math.BigInteger.valueOf(4998));
                TimeStampResponse resp =
                    new TimeStampResponse(Files.readAllBytes(new File(args[1]).toPath()));
                List<ERSArchiveTimeStamp> stamps = gen.generateArchiveTimeStamps(resp);
                List<ERSEvidenceRecord> records = new ERSEvidenceRecordGenerator(provider()).generate(stamps);
                for (int i = 0; i < records.size(); i++) {
                    Files.write(new File(args[2] + i + ".ers").toPath(), records.get(i).getEncoded());
                }
                System.out.println("WROTE " + records.size());
                break;
            }
            default:
                throw new IllegalArgumentException(args[0]);
        }
    }
}

using System.Reflection;
using Collab.Client.Sync;
using Collab.Protocol.V1;

namespace Collab.Client.Tests;

/// <summary>The SDK's public vocabulary: its own error enum covers the wire's, and no generated protobuf type is public.</summary>
public class SdkPublicSurfaceTests
{
    [Fact]
    public void EveryWireErrorCode_MapsToThePublicCodeOfTheSameNameAndNumber()
    {
        foreach (ErrorCode wire in Enum.GetValues<ErrorCode>().Where(c => c != ErrorCode.Unspecified))
        {
            CollabErrorCode mapped = ErrorCodes.ToPublic(wire);
            Assert.NotEqual(CollabErrorCode.Unknown, mapped);
            Assert.Equal(wire.ToString(), mapped.ToString());
            Assert.Equal((int)wire, (int)mapped);
        }

        Assert.Equal(CollabErrorCode.AlreadyCommitted, ErrorCodes.ToPublic(ErrorCode.AlreadyCommitted));
        Assert.Equal(CollabErrorCode.DocDeleted, ErrorCodes.ToPublic(ErrorCode.DocDeleted));
        Assert.Equal(CollabErrorCode.TypeMismatch, ErrorCodes.ToPublic(ErrorCode.TypeMismatch));
        Assert.Equal(Enum.GetValues<ErrorCode>().Length, Enum.GetValues<CollabErrorCode>().Length);
    }

    [Fact]
    public void ACodeFromANewerServer_IsUnknown() => Assert.Equal(CollabErrorCode.Unknown, ErrorCodes.ToPublic((ErrorCode)999));

    [Fact]
    public void TheSdksPublicSurface_ExposesNoGeneratedProtocolType()
    {
        Assembly sdk = typeof(CollabClient).Assembly;
        Assembly protocol = typeof(ErrorCode).Assembly;
        var leaks = new List<string>();
        foreach (Type type in sdk.GetExportedTypes())
        {
            const BindingFlags Public = BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
            foreach (MemberInfo member in type.GetMembers(Public))
            {
                IEnumerable<Type> used = member switch
                {
                    PropertyInfo p => [p.PropertyType],
                    FieldInfo f => [f.FieldType],
                    EventInfo e => [e.EventHandlerType!],
                    MethodBase m => m.GetParameters().Select(x => x.ParameterType).Concat(m is MethodInfo mi ? [mi.ReturnType] : []),
                    _ => [],
                };
                leaks.AddRange(used.SelectMany(Flatten).Where(t => t.Assembly == protocol).Select(t => $"{type.Name}.{member.Name}: {t.Name}"));
            }
        }

        Assert.Empty(leaks);

        static IEnumerable<Type> Flatten(Type t) => t.IsGenericType ? t.GetGenericArguments().SelectMany(Flatten).Prepend(t) : t.HasElementType ? Flatten(t.GetElementType()!) : [t];
    }
}
